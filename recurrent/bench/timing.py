"""Interleaved timing: every implementation runs once per repetition, in a rotating order.

On a shared machine the load changes from second to second; running the
implementations one after another within each repetition exposes them to the
same load, and the median over repetitions of each per-repetition ratio is a
far steadier number than a ratio of two separately timed runs.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(steps: dict[str, Callable[[], None]], reps: int, warmup: int = 1,
                steps_per_rep: int = 1, log: Callable[[str], None] | None = None
                ) -> dict[str, list[float]]:
  """Seconds per step of each runner, one entry per repetition.

  Each runner first runs ``warmup`` untimed steps; then, ``reps`` times, each
  runner times ``steps_per_rep`` steps (the order rotates by one every
  repetition so that no runner always follows the same neighbour).
  """
  names = list(steps)
  for name in names:
    for _ in range(warmup):
      steps[name]()
  seconds: dict[str, list[float]] = {name: [] for name in names}
  for rep in range(reps):
    k = rep % len(names)
    for name in names[k:] + names[:k]:
      start = time.perf_counter()
      for _ in range(steps_per_rep):
        steps[name]()
      seconds[name].append((time.perf_counter() - start) / steps_per_rep)
    if log is not None:
      log(f"  rep {rep + 1}/{reps}: " + ", ".join(
          f"{n} {seconds[n][-1] * 1e3:.0f} ms" for n in names))
  return seconds


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
  """The median over repetitions of numerator[r] / denominator[r]."""
  return statistics.median(a / b for a, b in zip(numerator, denominator))


def summarize(seconds: dict[str, list[float]], tokens: int, reference: str) -> dict:
  """{impl: {tokens_per_s, ms_per_step, speedup_of_reference}} from per-repetition times.

  ``speedup_of_reference`` is how many times faster ``reference`` ran than
  this implementation (median of per-repetition ratios; > 1: reference wins).
  """
  out = {}
  for name, s in seconds.items():
    med = statistics.median(s)
    out[name] = {"tokens_per_s": tokens / med, "ms_per_step": 1e3 * med,
                 "speedup_of_reference": median_ratio(s, seconds[reference]),
                 "seconds": s}
  return out
