"""Metrics over a whole split outside the trainer's eval set, for a task's ``report``.

The trainer evaluates the held-out split it is given (``eval_batches``); the
tables of the experiments also want train and test numbers at the same
checkpoint. ``SplitEvaluator`` runs the task's own ``loss_fn`` (rng=None,
deterministic) over any batches and divides summed totals by summed counts,
in float64 on the host, so the average is over every token / step exactly.
"""

from __future__ import annotations

from typing import Callable, Iterable

import jax
import numpy as np


class SplitEvaluator:
  """``evaluate(params, batches) -> {name: total / count}`` with one jitted loss_fn."""

  def __init__(self, loss_fn: Callable):
    self._metrics = jax.jit(lambda params, batch: loss_fn(params, batch, None)[1])

  def __call__(self, params, batches: Iterable[dict]) -> dict[str, float]:
    totals: dict[str, list[float]] = {}
    for batch in batches:
      for k, (t, c) in jax.device_get(self._metrics(params, batch)).items():
        acc = totals.setdefault(k, [0.0, 0.0])
        acc[0] += float(np.asarray(t, np.float64))
        acc[1] += float(np.asarray(c, np.float64))
    if not totals:
      raise ValueError("batches: yielded no batches")
    return {k: t / c for k, (t, c) in totals.items()}
