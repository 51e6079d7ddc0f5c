"""Sweeps: expansion, names, and a real three-point sweep (one fails) rerun to check skip and resume."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from recurrent.training import sweep

ROOT = Path(__file__).resolve().parents[1]


def test_product_and_list_expansion():
  pts = sweep.expand({"a": [1, 2], "b.c": ["x", "y", "z"]})
  assert pts == [{"a": 1, "b.c": "x"}, {"a": 1, "b.c": "y"}, {"a": 1, "b.c": "z"},
                 {"a": 2, "b.c": "x"}, {"a": 2, "b.c": "y"}, {"a": 2, "b.c": "z"}]
  assert sweep.expand([{"a": 1}, {"b": 2}]) == [{"a": 1}, {"b": 2}]
  assert sweep.expand(sweep.product({"a": [3]})) == [{"a": 3}]


@pytest.mark.parametrize("bad, match", [
    ({"a": 1}, "non-empty list"), ({"a": []}, "non-empty list"),
    ([{"a": 1}, {"a": 1}], "repeat"), ([{}], "non-empty dict")])
def test_bad_sweeps_fail(bad, match):
  with pytest.raises(ValueError, match=match):
    sweep.expand(bad)


def test_names_and_override_args():
  p = {"model.hidden_sizes": (8,), "optim.learning_rate": 0.001, "model.cell": "gru"}
  assert sweep.point_name(p) == "model.hidden_sizes=(8,),optim.learning_rate=0.001,model.cell=gru"
  assert sweep.override_args(p) == ["--config.model.hidden_sizes=(8,)",
                                    "--config.optim.learning_rate=0.001", "--config.model.cell=gru"]
  assert "/" not in sweep.point_name({"task.path": "a/b c"})


CONFIG = '''
from configs import sine

def get_config(arg=None):
  return sine.get_config("smoke")

def get_sweep():
  return [{"model.cell": "rnn"}, {"model.cell": "gru"}, {"optim.name": "bogus"}]
'''


def read_summary(d):
  with open(d / "summary.csv") as f:
    return {row["name"]: row for row in csv.DictReader(f)}


FAKE_TRAIN = r'''
"""Stands in for experiments.train: the same flags and workdir files, no JAX (fast)."""
import json, sys
from pathlib import Path
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
wd = Path(args["workdir"])
if args.get("config.optim.name") == "bogus":
  sys.exit("Traceback ...\nValueError: optim.name: must be one of ..., got 'bogus'")
m = wd / "metrics.jsonl"
start = 3 if m.exists() else 0
if start:
  print("resumed from checkpoints at step 3")
else:
  m.write_text("".join(json.dumps({"step": s, "split": "eval", "mse": 1.0 / s}) + "\n" for s in (1, 2, 3)))
  if args.get("config.model.cell") == "gru":
    sys.exit("killed")
with m.open("a") as f:
  f.write(json.dumps({"step": 4, "split": "eval", "mse": 0.5}) + "\n")
(wd / "final.json").write_text(json.dumps({"step": 4, "best": {"mse": 1 / 3}, "best_step": 3}))
'''


def test_sweep_skips_resumes_and_summarizes_with_a_fake_trainer(tmp_path):
  fake = tmp_path / "fake_train.py"
  fake.write_text(FAKE_TRAIN)
  d = tmp_path / "sweep"
  points = [{"model.cell": "rnn"}, {"model.cell": "gru"}, {"optim.name": "bogus"}]
  run = lambda: sweep.run_sweep("cfg.py", points, d, parallel=2, echo=lambda s: None,
                                train=(sys.executable, str(fake)))
  first = {r.name: r for r in run()}
  assert [first[n].status for n in ("model.cell=rnn", "model.cell=gru", "optim.name=bogus")] == \
      ["done", "failed", "failed"]
  assert first["optim.name=bogus"].error == "ValueError: optim.name: must be one of ..., got 'bogus'"
  assert first["model.cell=gru"].error == "killed"
  rows = read_summary(d)
  assert rows["model.cell=rnn"]["final"] == "0.5" and rows["model.cell=rnn"]["best_step"] == "3"
  assert rows["model.cell=gru"]["last_step"] == "3" and rows["model.cell=gru"]["best"] == ""
  assert (d / "sweep.png").stat().st_size > 0

  second = {r.name: r for r in run()}  # rnn finished: skipped; gru interrupted: resumed
  assert second["model.cell=rnn"].status == "skipped" and second["model.cell=gru"].status == "done"
  assert "resumed" in (d / "model.cell=gru" / "train.log").read_text()
  assert second["optim.name=bogus"].status == "failed"
  rows = read_summary(d)
  assert rows["model.cell=gru"]["status"] == "done" and rows["model.cell=gru"]["final"] == "0.5"
  assert rows["model.cell=rnn"]["status"] == "skipped" and rows["model.cell=rnn"]["final"] == "0.5"


@pytest.mark.slow
def test_sweep_runs_skips_resumes_and_summarizes(tmp_path):
  cfg = tmp_path / "tiny.py"
  cfg.write_text(CONFIG)
  d = tmp_path / "sweep"
  cmd = [sys.executable, "-m", "experiments.sweep", str(cfg), f"--workdir={d}", "--parallel=2"]
  first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
  assert first.returncode == 1, first.stdout + first.stderr  # one point failed, the others ran
  rows = read_summary(d)
  assert rows["model.cell=rnn"]["status"] == rows["model.cell=gru"]["status"] == "done"
  assert rows["optim.name=bogus"]["status"] == "failed"
  assert "optim.name: must be one of" in rows["optim.name=bogus"]["error"]
  for name in ("model.cell=rnn", "model.cell=gru"):
    assert rows[name]["last_step"] == "6" and float(rows[name]["final"]) > 0
    assert float(rows[name]["best"]) <= float(rows[name]["final"])
  assert (d / "sweep.png").stat().st_size > 0

  # Interrupt one point after the fact: drop its final.json; the rerun must resume it, skip the other.
  (d / "model.cell=gru" / "final.json").unlink()
  second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
  assert second.returncode == 1
  assert "model.cell=rnn: skipped" in second.stdout and "model.cell=gru: done" in second.stdout
  assert "resumed from" in (d / "model.cell=gru" / "train.log").read_text()
  assert read_summary(d)["model.cell=gru"]["final"] == rows["model.cell=gru"]["final"]
