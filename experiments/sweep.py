"""Runs a config's sweep: ``python -m experiments.sweep configs/NAME.py[:ARG] --workdir=DIR [--parallel=N]``.

The points come from ``get_sweep()`` in the config file (see
recurrent/training/sweep.py); each trains in ``DIR/<overrides>`` through
experiments.train. Rerunning skips finished points and resumes interrupted
ones. Writes DIR/summary.csv and DIR/sweep.png; exits 1 if any point failed.
Ctrl-C or SIGTERM stops the running points (they resume on a rerun), starts
no other, writes the partial summary and exits 130.

At cluster scale, with DIR on a shared filesystem:

    python -m experiments.sweep configs/NAME.py --workdir=DIR --print_commands   # one line per point
    python -m experiments.sweep configs/NAME.py --workdir=DIR --sbatch=sweep.sbatch \\
        --sbatch_option=--time=2:00:00 --sbatch_option=--cpus-per-task=8           # then: sbatch sweep.sbatch
    python -m experiments.sweep configs/NAME.py --workdir=DIR --collect          # summary of what is there

``--collect`` runs nothing; it exits 1 while any point is unfinished or missing.
"""

import importlib.util
import sys
from pathlib import Path

from absl import app, flags

from recurrent.training import sweep

flags.DEFINE_string("workdir", None, "the sweep's directory; one sub-workdir per point")
flags.DEFINE_integer("parallel", 1, "points trained at the same time")
flags.DEFINE_bool("print_commands", False, "print one shell command per point and run nothing")
flags.DEFINE_string("sbatch", None, "write a SLURM array script (one task per point) to this file "
                    "and run nothing")
flags.DEFINE_multi_string("sbatch_option", [], "an extra #SBATCH flag for --sbatch (repeatable)")
flags.DEFINE_string("python", "python", "the interpreter the printed commands and script call")
flags.DEFINE_bool("collect", False, "summarise the points other machines wrote to --workdir; "
                  "run nothing")
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
    raise app.UsageError("usage: experiments.sweep configs/NAME.py[:ARG] --workdir=DIR [--parallel=N]"
                         " [--print_commands | --sbatch=FILE | --collect]")
  if sum(map(bool, (FLAGS.print_commands, FLAGS.sbatch, FLAGS.collect))) > 1:
    raise app.UsageError("--print_commands, --sbatch and --collect: pass at most one")
  points = load_sweep(argv[1])
  if FLAGS.print_commands:
    print("\n".join(sweep.commands(argv[1], points, FLAGS.workdir, FLAGS.python)))
    return
  if FLAGS.sbatch:
    Path(FLAGS.sbatch).write_text(sweep.sbatch_script(argv[1], points, FLAGS.workdir, FLAGS.python,
                                                      tuple(FLAGS.sbatch_option)))
    print(f"sweep: {len(points)} points; submit with: sbatch {FLAGS.sbatch}")
    return
  if FLAGS.collect:
    if not Path(FLAGS.workdir).is_dir():
      raise app.UsageError(f"workdir: no directory {FLAGS.workdir}")
    results = sweep.collect(FLAGS.workdir, points)
    workdir = Path(FLAGS.workdir).absolute()
    sweep.write_summary(workdir, results)
    sweep.plot_sweep(workdir, results)
    for i, r in enumerate(results):
      print(f"[{i + 1}/{len(points)}] {r.name}: {r.status} {r.error}".rstrip())
    print(f"summary: {workdir / 'summary.csv'}, plot: {workdir / 'sweep.png'}")
    sys.exit(0 if all(r.status == "done" for r in results) else 1)
  print(f"sweep: {len(points)} points in {FLAGS.workdir}, {FLAGS.parallel} at a time")
  results = sweep.run_sweep(argv[1], points, FLAGS.workdir, FLAGS.parallel, cwd=Path.cwd())
  print(f"summary: {Path(FLAGS.workdir) / 'summary.csv'}, plot: {Path(FLAGS.workdir) / 'sweep.png'}")
  if any(r.status in ("interrupted", "not run") for r in results):
    sys.exit(130)  # stopped by a signal; the summary is partial
  sys.exit(1 if any(r.status == "failed" for r in results) else 0)


if __name__ == "__main__":
  app.run(main)
