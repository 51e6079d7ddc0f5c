"""Sweeps: a config's ``get_sweep()`` expanded into points, each trained in its own sub-workdir.

    def get_sweep():                     # in configs/NAME.py, next to get_config
      return {"model.cell": ["rnn", "gru"], "optim.learning_rate": [1e-3, 3e-3]}   # a product
      # or a list of override dicts: [{"model.cell": "rnn"}, {"model.cell": "gru", "batch_size": 64}]

    ./launch.sh sweep configs/NAME.py --workdir=DIR [--parallel=N]

Each point runs ``python -m experiments.train`` as a subprocess in
``DIR/<name from its overrides>``: a finished point (``final.json`` present) is
skipped, an interrupted one resumes from its checkpoints, a failing one is
recorded with its error (the exception line of its log's last traceback, not
the notes after it) and does not stop the others. The summary goes to
``DIR/summary.csv`` and ``DIR/sweep.png`` (eval curves overlaid; final and best
metric per point).

Signals: each point runs in its own session, so a Ctrl-C reaches the sweep
alone. SIGINT or SIGTERM to the sweep is forwarded to the running points;
no further point starts (their status is "not run"), the stopped ones are
"interrupted" (a rerun resumes them), and the partial summary is written
before ``run_sweep`` returns. A child also gets SIGTERM if the sweep dies
without forwarding (SIGKILL; Linux's parent-death signal).

At cluster scale the points run elsewhere and DIR is a shared directory:
``commands`` gives one shell line per point (for a SLURM array, GNU parallel
or any scheduler), ``sbatch_script`` a SLURM array job with one task per
point, and ``collect`` reads what the machines wrote to DIR (a point with
``final.json`` is done; one with only a sub-workdir is unfinished: running,
or failed with the last line of its train.log) for the same summary.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

from recurrent.training.metrics import curve, read_jsonl


def product(grid: dict) -> list[dict]:
  """{field: [values]} -> every combination, as override dicts (the first field varies slowest)."""
  keys = list(grid)
  for k in keys:
    if not isinstance(grid[k], (list, tuple)) or not grid[k]:
      raise ValueError(f"sweep: {k!r} must map to a non-empty list of values, got {grid[k]!r}")
  return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def expand(sweep) -> list[dict]:
  """A ``get_sweep()`` result (a list of override dicts, or a dict of lists = their product) -> points."""
  points = product(sweep) if isinstance(sweep, dict) else list(sweep)
  for p in points:
    if not isinstance(p, dict) or not p:
      raise ValueError(f"sweep: every point must be a non-empty dict of overrides, got {p!r}")
  names = [point_name(p) for p in points]
  dup = sorted({n for n in names if names.count(n) > 1})
  if dup:
    raise ValueError(f"sweep: points repeat: {dup}")
  return points


def format_value(v) -> str:
  """A value as ``--config.FIELD=`` reads it back (tuples as '(1,2)')."""
  if isinstance(v, (tuple, list)):
    return "(" + ",".join(format_value(x) for x in v) + ("," if len(v) == 1 else "") + ")"
  return str(v)


def point_name(overrides: dict) -> str:
  """A directory name from the overrides: 'model.cell=gru,optim.learning_rate=0.001'."""
  name = ",".join(f"{k}={format_value(v)}" for k, v in overrides.items())
  return re.sub(r"[^A-Za-z0-9_.,=()+-]", "_", name)


def override_args(overrides: dict) -> list[str]:
  return [f"--config.{k}={format_value(v)}" for k, v in overrides.items()]


@dataclasses.dataclass
class Result:
  name: str
  overrides: dict
  status: str          # done | skipped (finished before) | failed | interrupted | not run | unfinished | missing
  error: str = ""      # the failing run's exception line (or its log's last line)


TRAIN = (sys.executable, "-m", "experiments.train")


def error_line(log: str) -> str:
  """The exception line of the last traceback in ``log`` ("ValueError: ..."), else its last line.

  Python prints an exception's notes after it (JAX adds one, "For simplicity,
  JAX has removed its internal frames ..."), so the last line is not the error.
  """
  lines = [line.rstrip() for line in log.splitlines() if line.strip()]
  last_tb = max((i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call")),
                default=None)
  if last_tb is not None:
    for line in lines[last_tb + 1:]:
      if not line[:1].isspace():  # frames and source lines are indented; the exception is not
        return line.strip()
  return lines[-1].strip() if lines else ""


class Stop:
  """The sweep's stop flag and its running children, shared by the worker threads."""

  def __init__(self):
    self.signum: int | None = None
    self.procs: set[subprocess.Popen] = set()
    self.lock = threading.Lock()

  def handle(self, signum, frame) -> None:  # noqa: ARG002 - the signal handler's signature
    """Stops scheduling and forwards the signal to every running point."""
    self.signum = signum
    with self.lock:
      for p in self.procs:
        if p.poll() is None:
          p.send_signal(signum)


def _parent_death_signal():
  """A ``preexec_fn`` that makes the child get SIGTERM when the sweep dies (Linux prctl), or None.

  libc is looked up here, in the parent: the child only makes the call.
  """
  if sys.platform != "linux":
    return None
  try:
    import ctypes
    prctl = ctypes.CDLL(None, use_errno=True).prctl
  except (OSError, AttributeError):
    return None
  return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def run_point(config_arg: str, workdir: Path, overrides: dict, cwd: str | os.PathLike,
              train=TRAIN, stop: Stop | None = None) -> Result:
  """Trains one point in ``workdir / point_name`` (a subprocess of ``train``, experiments.train)."""
  stop = stop or Stop()
  name = point_name(overrides)
  sub = workdir / name
  if (sub / "final.json").exists():
    return Result(name, overrides, "skipped")
  if stop.signum is not None:
    return Result(name, overrides, "not run")
  sub.mkdir(parents=True, exist_ok=True)
  cmd = [*train, f"--config={config_arg}", f"--workdir={sub}",
         *override_args(overrides)]
  with open(sub / "train.log", "ab") as log:
    with stop.lock:
      if stop.signum is not None:
        return Result(name, overrides, "not run")
      proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True,
                              preexec_fn=_parent_death_signal())
      stop.procs.add(proc)
    rc = proc.wait()
    with stop.lock:
      stop.procs.discard(proc)
  if rc == 0:
    return Result(name, overrides, "done")
  if stop.signum is not None:
    return Result(name, overrides, "interrupted", f"stopped by {signal.Signals(stop.signum).name}")
  err = error_line((sub / "train.log").read_text(errors="replace"))
  return Result(name, overrides, "failed", err or f"exit status {rc}")


def point_command(config_arg: str, workdir: str | os.PathLike, overrides: dict,
                  python: str = "python") -> str:
  """One shell line that trains a point in ``workdir / point_name``, appending to its train.log."""
  sub = os.path.join(str(workdir), point_name(overrides))
  train = [python, "-m", "experiments.train", f"--config={config_arg}", f"--workdir={sub}",
           *override_args(overrides)]
  log = shlex.quote(os.path.join(sub, "train.log"))
  return f"mkdir -p {shlex.quote(sub)} && {shlex.join(train)} >> {log} 2>&1"


def commands(config_arg: str, points: list[dict], workdir: str | os.PathLike,
             python: str = "python") -> list[str]:
  """``point_command`` of every point, in order (line i is point i)."""
  return [point_command(config_arg, workdir, p, python) for p in points]


def sbatch_script(config_arg: str, points: list[dict], workdir: str | os.PathLike,
                  python: str = "python", options: tuple[str, ...] = ()) -> str:
  """A SLURM array job: task i trains point i (``sbatch FILE``; DIR must be on a shared filesystem).

  ``options`` are extra ``#SBATCH`` flags (``--time=2:00:00``, ``--gres=gpu:1``).
  A finished point is skipped, so resubmitting the array finishes the rest.
  """
  lines = ["#!/bin/bash", f"#SBATCH --job-name=sweep-{Path(config_arg.split(':')[0]).stem}",
           f"#SBATCH --array=0-{len(points) - 1}",
           f"#SBATCH --output={os.path.join(str(workdir), 'slurm-%A_%a.out')}"]
  lines += [f"#SBATCH {o}" for o in options]
  lines += ["# Generated by experiments.sweep --sbatch; collect the results with",
            f"#   python -m experiments.sweep {shlex.quote(config_arg)} "
            f"--workdir={shlex.quote(str(workdir))} --collect",
            "set -euo pipefail", "POINTS=("]
  for p in points:
    sub = os.path.join(str(workdir), point_name(p))
    lines.append("  " + shlex.quote(sub))
  lines.append(")")
  lines.append("COMMANDS=(")
  lines += ["  " + shlex.quote(c) for c in commands(config_arg, points, workdir, python)]
  lines += [")", 'sub=${POINTS[$SLURM_ARRAY_TASK_ID]}',
            'if [ -f "$sub/final.json" ]; then echo "done before: $sub"; exit 0; fi',
            'eval "${COMMANDS[$SLURM_ARRAY_TASK_ID]}"', ""]
  return "\n".join(lines)


def _last_line(path: Path) -> str:
  if not path.exists():
    return ""
  lines = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
  return lines[-1].strip() if lines else ""


def collect(workdir: str | os.PathLike, points: list[dict]) -> list[Result]:
  """The state of every point as other machines left it in ``workdir`` (nothing is run)."""
  workdir = Path(workdir).absolute()
  results = []
  for p in points:
    name = point_name(p)
    sub = workdir / name
    if (sub / "final.json").exists():
      results.append(Result(name, p, "done"))
    elif sub.exists():
      results.append(Result(name, p, "unfinished", _last_line(sub / "train.log")))
    else:
      results.append(Result(name, p, "missing"))
  return results


def run_sweep(config_arg: str, points: list[dict], workdir: str | os.PathLike, parallel: int = 1,
              cwd: str | os.PathLike = ".", echo=print, train=TRAIN) -> list[Result]:
  """Runs every point (``parallel`` at a time), then writes summary.csv and sweep.png.

  On SIGINT or SIGTERM (handled when called from the main thread) the
  running points are stopped, the rest not started, and the partial summary
  written; the results then hold "interrupted" and "not run" points.
  """
  if parallel < 1:
    raise ValueError(f"parallel: must be >= 1, got {parallel}")
  workdir = Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  stop = Stop()
  handled = (signal.SIGINT, signal.SIGTERM)
  main = threading.current_thread() is threading.main_thread()
  previous = {s: signal.signal(s, stop.handle) for s in handled} if main else {}
  try:
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
      futures = [pool.submit(run_point, config_arg, workdir, p, cwd, train, stop) for p in points]
      results = []
      for f in futures:
        r = f.result()
        echo(f"[{len(results) + 1}/{len(points)}] {r.name}: {r.status} {r.error}".rstrip())
        results.append(r)
  finally:
    for s, h in previous.items():
      signal.signal(s, h)
  if stop.signum is not None:
    echo(f"sweep: stopped by {signal.Signals(stop.signum).name}; "
         f"{sum(r.status == 'not run' for r in results)} point(s) not run; a rerun resumes")
  write_summary(workdir, results)
  plot_sweep(workdir, results)
  return results


def _eval_metric(sub: Path) -> str | None:
  final = sub / "final.json"
  if final.exists():
    return next(iter(json.loads(final.read_text())["best"]))
  return None


def summarize(workdir: Path, r: Result) -> dict:
  """One summary row: overrides, status, last step, final eval metric, best (of a finished run)."""
  sub = workdir / r.name
  records = read_jsonl(sub / "metrics.jsonl")
  metric = _eval_metric(sub) or "loss"
  steps, values = curve(records, "eval", metric)
  row = {"name": r.name, **r.overrides, "status": r.status, "metric": metric,
         "last_step": max((rec["step"] for rec in records), default=0),
         "final": values[-1] if values else "", "best": "", "best_step": "", "error": r.error}
  final = sub / "final.json"
  if final.exists():
    f = json.loads(final.read_text())
    row["best"], row["best_step"] = f["best"][metric], f["best_step"]
  return row


def write_summary(workdir: Path, results: list[Result]) -> Path:
  rows = [summarize(workdir, r) for r in results]
  fields = list(dict.fromkeys(k for row in rows for k in row))
  path = workdir / "summary.csv"
  with path.open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
  return path


def plot_sweep(workdir: Path, results: list[Result]) -> Path:
  """Eval curves of every point overlaid (left) and final vs best metric per point (right)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rows = [summarize(workdir, r) for r in results]
  fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
  for r, row in zip(results, rows):
    steps, values = curve(read_jsonl(workdir / r.name / "metrics.jsonl"), "eval", row["metric"])
    if steps:
      ax.plot(steps, values, "o-", markersize=3, label=r.name)
  metric = rows[0]["metric"] if rows else "loss"
  ax.set_xlabel("step")
  ax.set_ylabel(f"eval {metric}")
  if ax.lines:
    ax.legend(fontsize=7)
  idx = range(len(rows))
  final = [row["final"] if row["final"] != "" else float("nan") for row in rows]
  best = [row["best"] if row["best"] != "" else float("nan") for row in rows]
  bx.bar([i - 0.2 for i in idx], final, 0.4, label="final")
  bx.bar([i + 0.2 for i in idx], best, 0.4, label="best")
  bx.set_xticks(list(idx), [f"{row['name']}\n({row['status']})" for row in rows], rotation=30,
                ha="right", fontsize=7)
  bx.set_ylabel(f"eval {metric}")
  bx.legend()
  known = [v for v in final + best if v == v]
  if known and all(v > 0 for v in known):
    ax.set_yscale("log")
    bx.set_yscale("log")
  fig.tight_layout()
  path = workdir / "sweep.png"
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
