"""Runs a config's sweep: ``python -m experiments.sweep configs/NAME.py[:ARG] --workdir=DIR [--parallel=N]``.

The points come from ``get_sweep()`` in the config file (see
recurrent/training/sweep.py); each trains in ``DIR/<overrides>`` through
experiments.train. Rerunning skips finished points and resumes interrupted
ones. Writes DIR/summary.csv and DIR/sweep.png; exits 1 if any point failed.
Ctrl-C or SIGTERM stops the running points (they resume on a rerun), starts
no other, writes the partial summary and exits 130.
"""

import importlib.util
import sys
from pathlib import Path

from absl import app, flags

from recurrent.training import sweep

flags.DEFINE_string("workdir", None, "the sweep's directory; one sub-workdir per point")
flags.DEFINE_integer("parallel", 1, "points trained at the same time")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


def load_sweep(config_arg: str) -> list[dict]:
  path = Path(config_arg.split(":", 1)[0])
  if not path.is_file():
    raise app.UsageError(f"config: no file {path}")
  spec = importlib.util.spec_from_file_location(f"sweep_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_sweep"):
    raise app.UsageError(f"config: {path} defines no get_sweep()")
  return sweep.expand(module.get_sweep())


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: experiments.sweep configs/NAME.py[:ARG] --workdir=DIR [--parallel=N]")
  points = load_sweep(argv[1])
  print(f"sweep: {len(points)} points in {FLAGS.workdir}, {FLAGS.parallel} at a time")
  results = sweep.run_sweep(argv[1], points, FLAGS.workdir, FLAGS.parallel, cwd=Path.cwd())
  print(f"summary: {Path(FLAGS.workdir) / 'summary.csv'}, plot: {Path(FLAGS.workdir) / 'sweep.png'}")
  if any(r.status in ("interrupted", "not run") for r in results):
    sys.exit(130)  # stopped by a signal; the summary is partial
  sys.exit(1 if any(r.status == "failed" for r in results) else 0)


if __name__ == "__main__":
  app.run(main)
