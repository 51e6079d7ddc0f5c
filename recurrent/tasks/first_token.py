"""First token: after T random symbols and a query token, the next token is the first symbol.

Data: ``recurrent.data.long_range.first_token`` (ids 0 query, 1..V
symbols). The model is a ``LanguageModel`` over the V + 1 ids; the loss is
the cross-entropy of its next-token prediction after the query (the last
step), against the baseline ln V of a model that has forgotten the first
symbol.

Config fields (``config.task``): ``delay`` (T), ``num_symbols`` (V),
``embed_size``, ``eval_batches``.
"""

from __future__ import annotations

import jax.numpy as jnp

from recurrent.data import long_range
from recurrent.models import LanguageModel
from recurrent.tasks._long_range import Problem, build_task, check_task_fields, cross_entropy
from recurrent.tasks.base import argmax_hits


def problem(task_config) -> Problem:
  check_task_fields(task_config)
  delay, num_symbols = task_config.delay, task_config.num_symbols

  def loss(outputs, batch):
    logits_BTV, _ = outputs
    ce_B = cross_entropy(logits_BTV[:, -1], batch["targets"])
    hit = argmax_hits(logits_BTV[:, -1], batch["targets"])
    total, n = jnp.sum(ce_B), ce_B.size
    return total / n, {"loss": (total, n), "accuracy": (jnp.sum(hit), n)}

  return Problem(
      name="first_token",
      make_model=lambda **kw: LanguageModel(**kw, vocab_size=num_symbols + 1,
                                            embed_size=task_config.embed_size),
      sample=lambda key, batch_size: long_range.first_token(key, batch_size, delay, num_symbols),
      loss=loss,
      final_loss=lambda outputs, batch: loss(outputs, batch)[0],
      baseline=long_range.first_token_baseline(num_symbols),
      baseline_name="ln V: the first symbol forgotten")


def build(config):
  return build_task(config, problem(config.task))
