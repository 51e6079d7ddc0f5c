"""What the three long-range tasks share: a ``Problem`` (model, data, loss, baseline) and its Task.

Shape legend: B batch, T time, C outputs.

A ``Problem`` is the pure description the gradient lab trains directly
(vmapped over seeds); ``build_task`` wraps it in the trainer's Task contract
so that ``configs/adding.py`` etc. also run through ``experiments.train``.
The leading underscore keeps this module out of the task registry.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from recurrent.checks import check_int
from recurrent.models import rnn_kwargs
from recurrent.tasks.base import Task, dropout_rngs

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Problem:
  """A long-range task with its delay fixed.

  Attributes:
    name: the task's module name.
    make_model: (**rnn_kwargs) -> the Flax model (a ``recurrent.models`` head).
    sample: (key, batch_size) -> batch {"inputs", "targets"}, a pure function of the key.
    loss: (outputs, batch) -> (mean loss, {name: (total, count)}), the training loss.
    final_loss: (outputs, batch) -> the mean loss at the last step only, the L
      whose dL/dh_t the diagnostics measure.
    baseline: the training loss of the best memoryless predictor.
    baseline_name: what that predictor is, for printed tables.
  """

  name: str
  make_model: Callable[..., nn.Module]
  sample: Callable[[Array, int], dict]
  loss: Callable[[Any, dict], tuple[Array, dict]]
  final_loss: Callable[[Any, dict], Array]
  baseline: float
  baseline_name: str


def cross_entropy(logits: Array, labels: Array) -> Array:
  """-log softmax(logits)[label], elementwise over the leading axes."""
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def check_task_fields(task_config, min_delay: int = 1) -> None:
  """Fails naming the field on a ``task.*`` value of the long-range configs (configs/adding.py)."""
  for field, least in (("delay", min_delay), ("num_symbols", 1), ("embed_size", 1)):
    check_int(f"task.{field}", task_config[field], least)


def build_task(config, problem: Problem) -> Task:
  """The trainer's Task for ``problem``: data from (seed, step), a fixed held-out set."""
  n = config.task.num_eval_batches
  check_int("task.num_eval_batches", n)
  model = problem.make_model(**rnn_kwargs(config.model))
  data_key = jax.random.fold_in(jax.random.key(config.seed), 0x10_a9)
  eval_key = jax.random.fold_in(jax.random.key(config.seed), 0xe7a1)
  example = problem.sample(eval_key, 1)["inputs"]
  num_eval_batches = config.task.num_eval_batches

  def init_params(rng):
    return model.init(rng, example)["params"]

  def loss_fn(params, batch, rng):
    rngs = dropout_rngs(rng)
    outputs = model.apply({"params": params}, batch["inputs"], deterministic=rng is None,
                          rngs=rngs)
    return problem.loss(outputs, batch)

  def train_batch(step):
    return problem.sample(jax.random.fold_in(data_key, step), config.batch_size)

  def eval_batches():
    for i in range(num_eval_batches):
      yield problem.sample(jax.random.fold_in(eval_key, i), config.batch_size)

  return Task(init_params=init_params, loss_fn=loss_fn, train_batch=train_batch,
              eval_batches=eval_batches,
              num_tokens=lambda b: b["inputs"].shape[0] * b["inputs"].shape[1],
              eval_metric="loss", eval_mode="min")
