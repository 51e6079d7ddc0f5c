"""Where a step's time goes: a few steps under the library's own profiler, summed per operation.

    rows = jax_ops(step, steps=3)     # XLA's thunks (fusions, dots, copies) from a jax.profiler trace
    rows = torch_ops(step, steps=3)   # PyTorch's operators from torch.profiler
    print(format_ops(rows))

Each row is {op, ms_per_step, calls_per_step, share}: the operation's *self*
time (its own duration minus the operations nested in it, on the same
thread) per step, and its share of the step's wall time. On several threads
the shares can add up to more than 1, and a container's self time (XLA's
``ThunkExecutor::Execute``, a ``while`` loop) is the time between the
operations it runs: dispatch and waiting. An operation that ran beside
others on XLA's shared thread pool includes its waits for that pool. A
profiler slows what it traces (by a few per cent to a few tens of per cent
for steps of many small operations): read the table for where the time goes,
the timed rows of the benchmark for how long a step takes.

Used by ``python -m experiments.benchmark --config.profile=3`` (every
implementation of every suite, into the log and ``benchmark.json``) and by
``python -m experiments.train ... --profile_steps=5`` (the run's own train
steps, into WORKDIR/tb for TensorBoard and WORKDIR/profile_ops.txt).
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import tempfile
import time
from typing import Callable


def _rows(self_us: dict, calls: dict, steps: int, wall_s: float) -> list[dict]:
  wall_ms = 1e3 * wall_s / steps
  rows = [{"op": name, "ms_per_step": us / 1e3 / steps, "calls_per_step": calls[name] / steps,
           "share": us / 1e3 / steps / wall_ms if wall_ms > 0 else 0.0}
          for name, us in self_us.items()]
  return sorted(rows, key=lambda r: -r["ms_per_step"])


def self_times(events: list[dict], threads: set) -> tuple[dict, dict]:
  """({name: self microseconds}, {name: calls}) of complete ("X") trace events on ``threads``.

  Events on one thread nest (a loop contains its body's operations); an
  event's self time is its duration minus that of the events directly inside it.
  """
  by_thread = collections.defaultdict(list)
  for e in events:
    if (e.get("ph") == "X" and e.get("tid") in threads and not e["name"].startswith("end: ")
        and not e["name"].endswith("(wait for completion)")):  # the caller's wait, not an operation
      by_thread[e["tid"]].append(e)
  self_us: dict = collections.Counter()
  calls: dict = collections.Counter()
  for evs in by_thread.values():
    evs.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack: list[tuple[float, str]] = []   # (end time, name) of the open events
    for e in evs:
      start, dur = float(e["ts"]), float(e["dur"])
      while stack and stack[-1][0] <= start:
        stack.pop()
      if stack:
        self_us[stack[-1][1]] -= min(dur, stack[-1][0] - start)
      self_us[e["name"]] += dur
      calls[e["name"]] += 1
      stack.append((start + dur, e["name"]))
  return dict(self_us), dict(calls)


def _traces(logdir: str) -> set[str]:
  return set(glob.glob(os.path.join(logdir, "**", "*.trace.json.gz"), recursive=True))


def trace_ops(logdir: str, before: set[str], steps: int, wall_s: float) -> list[dict]:
  """The rows of the newest trace ``jax.profiler`` wrote under ``logdir`` (not in ``before``),
  ``steps`` steps that took ``wall_s`` seconds; only XLA's threads count (not the Python caller's)."""
  paths = sorted(_traces(logdir) - before, key=os.path.getmtime)
  if not paths:
    raise RuntimeError(f"jax.profiler wrote no *.trace.json.gz under {logdir}")
  with gzip.open(paths[-1]) as f:
    events = json.load(f)["traceEvents"]
  threads = {e["tid"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"
             and "XLA" in e["args"]["name"]}
  return _rows(*self_times(events, threads), steps, wall_s)


class Trace:
  """``jax.profiler``'s trace of whatever runs between ``start()`` and ``stop(steps)``, which
  returns its rows; the trace stays in ``logdir`` (TensorBoard's profile plugin, Perfetto)."""

  def __init__(self, logdir: str):
    self.logdir = logdir

  def start(self) -> None:
    import jax
    self.before = _traces(self.logdir)
    jax.profiler.start_trace(self.logdir, create_perfetto_trace=True)
    self.started = time.perf_counter()

  def stop(self, steps: int, wall_s: float | None = None) -> list[dict]:
    """The rows, their shares of ``wall_s`` (default: the time since ``start()``)."""
    import jax
    wall = time.perf_counter() - self.started if wall_s is None else wall_s
    jax.profiler.stop_trace()
    return trace_ops(self.logdir, self.before, steps, wall)


def jax_ops(step: Callable[[], None], steps: int = 3, logdir: str | None = None) -> list[dict]:
  """Per-operation self time of ``steps`` calls of ``step`` (which must block until done), from
  a ``jax.profiler`` trace. The trace is kept in ``logdir`` if one is given."""
  if logdir is None:
    with tempfile.TemporaryDirectory() as tmp:
      return jax_ops(step, steps, tmp)
  trace = Trace(logdir)
  trace.start()
  try:
    for _ in range(steps):
      step()
  finally:
    rows = trace.stop(steps)
  return rows


def torch_ops(step: Callable[[], None], steps: int = 3) -> list[dict]:
  """Per-operator self CPU time of ``steps`` calls of ``step`` under ``torch.profiler``."""
  import torch
  with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    start = time.perf_counter()
    for _ in range(steps):
      step()
    wall = time.perf_counter() - start
  averages = prof.key_averages()
  return _rows({a.key: a.self_cpu_time_total for a in averages},
               {a.key: a.count for a in averages}, steps, wall)


def format_ops(rows: list[dict], top: int = 12) -> str:
  """The ``top`` rows as an aligned text table."""
  lines = [f"    {'ms/step':>9} {'share':>6} {'calls':>7}  op"]
  for r in rows[:top]:
    lines.append(f"    {r['ms_per_step']:9.2f} {100 * r['share']:5.1f}% {r['calls_per_step']:7.1f}  "
                 f"{r['op'][:80]}")
  return "\n".join(lines)
