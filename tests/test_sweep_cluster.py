"""Sweeps at cluster scale: printed commands and an sbatch array script run "elsewhere", then --collect.

The commands are executed by bash as a scheduler would (one per point, the
array script once per SLURM_ARRAY_TASK_ID), with ``--python`` pointing at a
stand-in for the interpreter that runs a fake trainer (no JAX, fast); the
summary must then hold what those runs wrote to the shared workdir.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

from recurrent.training import sweep

ROOT = Path(__file__).resolve().parents[1]

FAKE_TRAIN = r'''
import json, sys
from pathlib import Path
assert sys.argv[1:3] == ["-m", "experiments.train"], sys.argv
args = dict(a[2:].split("=", 1) for a in sys.argv[3:])
wd = Path(args["workdir"])
lr = float(args["config.optim.learning_rate"])
if lr > 1:
  sys.exit("ValueError: diverged at step 2")
print("training", wd.name)
(wd / "metrics.jsonl").write_text(json.dumps({"step": 4, "split": "eval", "mse": lr}) + "\n")
(wd / "final.json").write_text(json.dumps({"step": 4, "best": {"mse": lr}, "best_step": 4}))
'''

CONFIG = '''
from configs import sine

def get_config(arg=None):
  return sine.get_config("smoke")

def get_sweep():
  return {"optim.learning_rate": [0.1, 0.2, 5.0]}
'''


def fake_python(tmp_path) -> str:
  (tmp_path / "fake_train.py").write_text(FAKE_TRAIN)
  py = tmp_path / "fakepython"
  py.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "fake_train.py"} "$@"\n')
  py.chmod(0o755)
  return str(py)


def summary(d):
  with open(d / "summary.csv") as f:
    return {row["name"]: row for row in csv.DictReader(f)}


POINTS = [{"optim.learning_rate": 0.1}, {"optim.learning_rate": 0.2}, {"optim.learning_rate": 5.0}]
NAMES = [sweep.point_name(p) for p in POINTS]


def test_printed_commands_run_anywhere_and_collect_summarises_them(tmp_path):
  d = tmp_path / "shared dir"  # a space: the commands must quote
  cmds = sweep.commands("cfg.py", POINTS, d, python=fake_python(tmp_path))
  assert len(cmds) == 3 and all("--config=cfg.py" in c for c in cmds)
  assert "--config.optim.learning_rate=0.2" in cmds[1]
  d.mkdir()
  assert [r.status for r in sweep.collect(d, POINTS)] == ["missing"] * 3
  subprocess.run(["bash", "-c", cmds[0]], check=True, timeout=60)  # "machine A"
  rc = subprocess.run(["bash", "-c", cmds[2]], timeout=60).returncode  # "machine B": fails
  assert rc != 0
  results = sweep.collect(d, POINTS)
  assert [r.status for r in results] == ["done", "missing", "unfinished"]
  assert results[2].error == "ValueError: diverged at step 2"
  sweep.write_summary(d, results)
  rows = summary(d)
  assert rows[NAMES[0]]["status"] == "done" and rows[NAMES[0]]["best"] == "0.1"
  assert rows[NAMES[1]]["status"] == "missing" and rows[NAMES[1]]["final"] == ""
  assert "training" in (d / NAMES[0] / "train.log").read_text()


def test_sbatch_array_script_runs_one_point_per_task_and_skips_finished_ones(tmp_path):
  d = tmp_path / "shared"
  script = sweep.sbatch_script("cfg.py", POINTS, d, python=fake_python(tmp_path),
                               options=("--time=1:00:00",))
  assert "#SBATCH --array=0-2\n" in script and "#SBATCH --time=1:00:00\n" in script
  path = tmp_path / "sweep.sbatch"
  path.write_text(script)
  task = lambda i: subprocess.run(["bash", str(path)], env={**os.environ, "SLURM_ARRAY_TASK_ID": str(i)},
                                  capture_output=True, text=True, timeout=60)
  assert task(1).returncode == 0
  assert [r.status for r in sweep.collect(d, POINTS)] == ["missing", "done", "missing"]
  again = task(1)
  assert again.returncode == 0 and "done before" in again.stdout
  assert task(0).returncode == 0 and task(2).returncode != 0
  assert [r.status for r in sweep.collect(d, POINTS)] == ["done", "done", "unfinished"]


def test_the_sweep_binary_prints_commands_and_collects(tmp_path):
  cfg = tmp_path / "tiny.py"
  cfg.write_text(CONFIG)
  d = tmp_path / "sweep"
  base = [sys.executable, "-m", "experiments.sweep", str(cfg), f"--workdir={d}",
          f"--python={fake_python(tmp_path)}"]
  printed = subprocess.run(base + ["--print_commands"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
  assert printed.returncode == 0, printed.stderr[-2000:]
  lines = printed.stdout.strip().splitlines()
  assert len(lines) == 3 and "--config.optim.learning_rate=5.0" in lines[2]
  for line in lines[:2]:
    subprocess.run(["bash", "-c", line], check=True, timeout=60)
  collected = subprocess.run(base + ["--collect"], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert collected.returncode == 1  # one point missing
  assert "[3/3] optim.learning_rate=5.0: missing" in collected.stdout, collected.stdout
  rows = summary(d)
  assert rows[NAMES[1]]["best"] == "0.2" and (d / "sweep.png").stat().st_size > 0
