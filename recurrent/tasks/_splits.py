"""Metrics over a whole split outside the trainer's eval set, for a task's ``report``.

The trainer evaluates the held-out split it is given (``eval_batches``); the
tables of the experiments also want train and test numbers at the same
checkpoint. ``SplitEvaluator`` runs the task's own ``loss_fn`` (rng=None,
deterministic) over any batches and divides summed totals by summed counts,
in float64 on the host (``base.mean_metrics``, as the trainer's evaluator),
so the average is over every token / step exactly.
"""

from __future__ import annotations

from typing import Callable, Iterable

import jax

from recurrent.tasks.base import mean_metrics


class SplitEvaluator:
  """``evaluate(params, batches) -> {name: total / count}`` with one jitted loss_fn."""

  def __init__(self, loss_fn: Callable):
    self._metrics = jax.jit(lambda params, batch: loss_fn(params, batch, None)[1])

  def __call__(self, params, batches: Iterable[dict]) -> dict[str, float]:
    per_batch = [self._metrics(params, batch) for batch in batches]  # one transfer at the end
    if not per_batch:
      raise ValueError("batches: yielded no batches")
    return mean_metrics(jax.device_get(per_batch))
