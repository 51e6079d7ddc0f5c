"""The adding problem: sum the two marked values of a length-T sequence (many-to-one regression).

Data: ``recurrent.data.long_range.adding``. The model reads x_BT2 with a
recurrent stack and maps its last hidden state to one number; the loss is
the mean squared error, against the baseline 1/6 of always predicting 1.

Config fields (``config.task``): ``delay`` (T, the sequence length),
``eval_batches`` (held-out batches of ``config.batch_size``).
"""

from __future__ import annotations

import jax.numpy as jnp

from recurrent.data import long_range
from recurrent.models import SequenceClassifier
from recurrent.tasks._long_range import Problem, build_task, check_task_fields


def problem(task_config) -> Problem:
  check_task_fields(task_config, min_delay=2)
  delay = task_config.delay

  def loss(outputs_B1, batch):
    err_B = outputs_B1[:, 0] - batch["targets"]
    sse, n = jnp.sum(err_B ** 2), err_B.size
    return sse / n, {"loss": (sse, n), "mse": (sse, n)}

  return Problem(
      name="adding",
      make_model=lambda **kw: SequenceClassifier(**kw, num_outputs=1, pooling="last"),
      sample=lambda key, batch_size: long_range.adding(key, batch_size, delay),
      loss=loss,
      final_loss=lambda outputs, batch: loss(outputs, batch)[0],
      baseline=long_range.adding_baseline(),
      baseline_name="MSE of predicting 1")


def build(config):
  return build_task(config, problem(config.task))
