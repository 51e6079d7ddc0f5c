"""Metrics: the same scalars to TensorBoard event files and ``WORKDIR/metrics.jsonl``; the loss curve.

Each JSONL line is one record ``{"step": s, "split": "train" | "eval", name: value, ...}``;
TensorBoard gets ``split/name``. A resumed run first drops the records past
the checkpoint it restarts from (they will be written again), in both files.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tensorboardX  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from recurrent.tasks.base import mean_metrics  # noqa: E402,F401 (the trainer's evaluator sums with it)


def quiet_libraries() -> None:
  """Keeps Orbax's per-save INFO lines out of the absl log; its warnings and errors still show."""
  drop = lambda r: not ("/orbax/" in r.pathname and r.levelno < logging.WARNING)
  absl_logging.get_absl_handler().addFilter(drop)


def window_means(steps: Sequence[Mapping[str, float]]) -> dict[str, float]:
  """Each train scalar averaged over the steps since the last log that have it (one dict per step).

  The loop's non-logging steps return the loss alone, the logging step every
  metric: so what a log line and metrics.jsonl report at step s is the loss's
  mean over steps s - log_every + 1 .. s (a single batch's loss is noisy) and
  the other scalars' values at step s. A value that is NaN at a step (a
  metric with no tokens in that batch) is skipped; a name that is NaN at
  every step is left out.
  """
  out = {}
  for k in dict.fromkeys(k for m in steps for k in m):  # every name, in first-seen order
    v = np.array([float(m[k]) for m in steps if k in m], np.float64)
    if not np.all(np.isnan(v)):
      out[k] = float(np.nanmean(v))
  return out


def read_jsonl(path: str | os.PathLike) -> list[dict]:
  """The records of a JSONL file ([] if absent).

  A last line without its newline (a write cut short by SIGKILL) is dropped;
  a damaged line elsewhere raises naming the file and line.
  """
  path = Path(path)
  if not path.exists():
    return []
  text = path.read_text(errors="replace")
  lines = text.split("\n")
  if lines[-1].strip():
    absl_logging.warning("%s: dropping the unfinished last line %r", path, lines[-1][:80])
  records = []
  for n, line in enumerate(lines[:-1], 1):
    if line.strip():
      try:
        records.append(json.loads(line))
      except ValueError as e:
        raise ValueError(f"{path}:{n}: not a JSON record ({e}): {line[:80]!r}") from None
  return records


class MetricWriter:
  """Writes scalars to ``workdir/metrics.jsonl`` and TensorBoard events under ``workdir/tb``."""

  def __init__(self, workdir: str | os.PathLike, start_step: int = 0):
    workdir = Path(workdir)
    self.path = workdir / "metrics.jsonl"
    kept = [r for r in read_jsonl(self.path) if r["step"] <= start_step]
    self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    self.tb = tensorboardX.SummaryWriter(str(workdir / "tb"),
                                         purge_step=start_step + 1 if start_step else None)

  def write(self, step: int, split: str, scalars: dict) -> None:
    scalars = {k: float(v) for k, v in scalars.items()}
    with self.path.open("a") as f:
      f.write(json.dumps({"step": int(step), "split": split, **scalars}) + "\n")
    for k, v in scalars.items():
      self.tb.add_scalar(f"{split}/{k}", v, int(step))

  def close(self) -> None:
    self.tb.close()


def curve(records: list[dict], split: str, name: str) -> tuple[list[int], list[float]]:
  """(steps, values) of ``name`` in the records of one split."""
  pts = [(r["step"], r[name]) for r in records if r["split"] == split and name in r]
  return [s for s, _ in pts], [v for _, v in pts]


def plot_loss_curves(workdir: str | os.PathLike, name: str = "loss") -> Path:
  """Train and eval ``name`` against step, from metrics.jsonl, to ``workdir/loss_curve.png``."""
  workdir = Path(workdir)
  records = read_jsonl(workdir / "metrics.jsonl")
  fig, ax = plt.subplots(figsize=(6, 4))
  for split, style in (("train", "-"), ("eval", "o-")):
    steps, values = curve(records, split, name)
    if steps:
      ax.plot(steps, values, style, label=split, markersize=3)
  ax.set_xlabel("step")
  ax.set_ylabel(name)
  if all(v > 0 for r in records for k, v in r.items() if k == name):
    ax.set_yscale("log")
  ax.legend()
  ax.set_title(workdir.name)
  fig.tight_layout()
  out = workdir / "loss_curve.png"
  fig.savefig(out, dpi=100)
  plt.close(fig)
  return out
