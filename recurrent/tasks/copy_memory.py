"""Copy memory: reproduce 10 symbols after a gap of T blanks (many-to-many, aligned).

Data: ``recurrent.data.long_range.copy_memory`` (ids 0 blank, 1..8 symbols,
9 delimiter). The model embeds the ids, runs a recurrent stack and predicts
one of the 10 ids at every step (``SequenceTagger``); the loss is the mean
cross-entropy over all T + 20 steps, against the baseline 10 ln 8 / (T + 20)
of predicting blanks and then uniform symbols.

Config fields (``config.task``): ``delay`` (T), ``embed_size``,
``eval_batches``.
"""

from __future__ import annotations

import jax.numpy as jnp

from recurrent.data import long_range
from recurrent.models import SequenceTagger
from recurrent.tasks._long_range import Problem, build_task, check_task_fields, cross_entropy
from recurrent.tasks.base import argmax_hits

VOCAB = long_range.COPY_DELIMITER + 1
COPY_LENGTH = 10


def problem(task_config) -> Problem:
  check_task_fields(task_config)
  delay = task_config.delay

  def loss(logits_BTV, batch):
    ce_BT = cross_entropy(logits_BTV, batch["targets"])
    total, n = jnp.sum(ce_BT), ce_BT.size
    hit = argmax_hits(logits_BTV[:, -COPY_LENGTH:], batch["targets"][:, -COPY_LENGTH:])
    return total / n, {"loss": (total, n), "copy_accuracy": (jnp.sum(hit), hit.size)}

  return Problem(
      name="copy_memory",
      make_model=lambda **kw: SequenceTagger(**kw, num_outputs=VOCAB, vocab_size=VOCAB,
                                             embed_size=task_config.embed_size),
      sample=lambda key, batch_size: long_range.copy_memory(key, batch_size, delay),
      loss=loss,
      final_loss=lambda logits, batch: jnp.mean(
          cross_entropy(logits[:, -1], batch["targets"][:, -1])),
      baseline=long_range.copy_memory_baseline(delay),
      baseline_name="blanks, then uniform over 8 symbols")


def build(config):
  return build_task(config, problem(config.task))
