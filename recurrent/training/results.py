"""Finished runs read back from their workdirs: each at its best checkpoint, grouped over seeds.

    rows = [best_row(wd) for wd in workdirs("runs/sweep/*")]   # None: the run did not finish
    table = group_rows(rows, ["model.cell"], ["test_accuracy"])  # (mean, sample std) per cell

A run's best row is the eval row of ``final.json``'s ``best_step`` in its
``metrics.jsonl``, with its config fields (dotted, from ``config.json``),
``best_step``, ``num_steps`` and ``wall_s`` (the seconds its processes ran, from the
absl timestamps of ``train.log``; the time between a run's attempts is left
out). Used by experiments.results_table and the figure scripts of experiments/.
"""

from __future__ import annotations

import datetime
import glob
import json
import re
from pathlib import Path

import numpy as np

_ABSL_TIME = re.compile(r"^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d(?:\.\d+)?) +(\d+) ")


def wall_seconds(log: Path) -> float | None:
  """Seconds the run's processes ran, from the absl timestamps of ``log``; None without two lines.

  A resumed run appends each attempt to the same log, so the span from the first line to the last
  would count the time between attempts too. absl writes the logging thread's id on every line and
  a new process has new ids: the wall time is the length of the union of the intervals [first,
  last line] of every thread id (another thread's lines lie inside its process's interval).
  """
  if not log.exists():
    return None
  spans: dict[str, list] = {}   # thread id -> [first, last] time
  last, lines = None, 0
  for line in log.read_text(errors="replace").splitlines():
    m = _ABSL_TIME.match(line)
    if m:
      month, day, hour, minute, sec, thread = m.groups()
      year = last.year if last else 2000  # absl writes no year; a run over New Year rolls on
      t = datetime.datetime(year, int(month), int(day), int(hour), int(minute)) + \
          datetime.timedelta(seconds=float(sec))
      last = t.replace(year=year + 1) if last and t < last else t
      spans.setdefault(thread, [last, last])[1] = last
      lines += 1
  if lines < 2:
    return None
  total, end = 0.0, None
  for a, b in sorted(spans.values()):
    if end is None or a > end:
      total, end = total + (b - a).total_seconds(), b
    elif b > end:
      total, end = total + (b - end).total_seconds(), b
  return total


def best_row(workdir: Path) -> dict | None:
  """The run's config fields (dotted) and eval metrics at its best step; None if unfinished."""
  if not (workdir / "final.json").exists():
    return None
  final = json.loads((workdir / "final.json").read_text())
  evals = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()
           if '"eval"' in l]
  row = next(r for r in evals if r["step"] == final["best_step"])

  def flat(d, prefix=""):
    for k, v in d.items():
      yield from flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]

  return {**dict(flat(json.loads((workdir / "config.json").read_text()))), **row,
          "best_step": final["best_step"], "num_steps": final["step"],
          "wall_s": wall_seconds(workdir / "train.log")}


def workdirs(pattern: str) -> list[Path]:
  """The directories ``pattern`` matches, sorted (a sweep's summary.csv and sweep.png are not runs)."""
  return sorted(p for p in map(Path, glob.glob(pattern)) if p.is_dir())


def group_rows(rows: list[dict | None], group_by: list[str], columns: list[str]) -> list[dict]:
  """One row per distinct ``group_by`` values of the finished ``rows`` (None = unfinished, skipped).

  A column whose values are all numbers becomes (mean, sample std or None for
  one run); any other keeps its value if the group agrees, else a sorted list.
  ``runs`` is the number of finished runs in the group.
  """
  groups: dict[tuple, list[dict]] = {}
  for row in rows:
    if row is not None:
      groups.setdefault(tuple(json.dumps(row.get(g), sort_keys=True) for g in group_by), []).append(row)
  out = []
  for members in groups.values():
    grouped = {g: members[0].get(g) for g in group_by}
    for c in columns:
      values = [m.get(c) for m in members]
      if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        x = np.asarray(values, np.float64)
        grouped[c] = (float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else None)
      else:
        distinct = sorted({json.dumps(v, sort_keys=True) for v in values})
        grouped[c] = values[0] if len(distinct) == 1 else [json.loads(d) for d in distinct]
    grouped["runs"] = len(members)
    out.append(grouped)
  return sorted(out, key=lambda r: [json.dumps(r[g], sort_keys=True) for g in group_by])




def values_by(variants: list[tuple[str, str]], key: str, metric: str, order: list = ()
              ) -> tuple[list, list[dict], list[Path]]:
  """(keys, series, unfinished) of finished runs, ``metric`` at each one's best step, grouped by ``key``.

  ``variants`` are (label, glob of workdirs); each gives one series
  {"label", "values": [per key: the runs' metric values]}. The keys are the
  distinct values of the config field ``key`` over all variants, those in
  ``order`` first in that order, any other after them sorted; ``unfinished``
  lists the workdirs without ``final.json``.
  """
  rows, unfinished = {}, []
  for label, pattern in variants:
    rows[label] = []
    for wd in workdirs(pattern):
      row = best_row(wd)
      if row is None:
        unfinished.append(wd)
      else:
        rows[label].append(row)
  rank = {k: i for i, k in enumerate(order)}
  keys = sorted({r[key] for rs in rows.values() for r in rs}, key=lambda k: (rank.get(k, len(rank)), str(k)))
  series = [{"label": label, "values": [[float(r[metric]) for r in rs if r[key] == k] for k in keys]}
            for label, rs in rows.items()]
  return keys, series, unfinished
