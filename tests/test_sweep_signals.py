"""Sweeps under Ctrl-C and SIGTERM (real processes), and the error a failed point records (issue 18.8)."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recurrent.training import sweep

ROOT = Path(__file__).resolve().parents[1]

SLOW_TRAIN = r'''
"""Stands in for experiments.train: writes its pid, then trains 'forever' (60 s)."""
import os, sys, time
from pathlib import Path
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
wd = Path(args["workdir"])
(wd / "pid").write_text(str(os.getpid()))
time.sleep(60)
(wd / "final.json").write_text('{"step": 1, "best": {"loss": 1.0}, "best_step": 1}')
'''

DRIVER = r'''
import sys
from recurrent.training import sweep
points = [{"model.cell": c} for c in ("rnn", "gru", "lstm")]
results = sweep.run_sweep("cfg.py", points, sys.argv[1], parallel=1,
                          train=(sys.executable, sys.argv[2]))
sys.exit(130 if any(r.status in ("interrupted", "not run") for r in results) else 0)
'''


def alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  return True


def start_sweep(tmp_path):
  fake = tmp_path / "slow_train.py"
  fake.write_text(SLOW_TRAIN)
  d = tmp_path / "sweep"
  driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(d), str(fake)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group, as in a terminal
  pid_file = d / "model.cell=rnn" / "pid"
  deadline = time.time() + 60
  while not (pid_file.exists() and pid_file.read_text()):
    assert driver.poll() is None, driver.stdout.read()
    assert time.time() < deadline, "the first point never started"
    time.sleep(0.05)
  return driver, d, int(pid_file.read_text())


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_signal_stops_the_running_point_and_the_schedule_and_writes_the_summary(tmp_path, how):
  driver, d, child = start_sweep(tmp_path)
  try:
    if how == "ctrl-c":  # the terminal signals the whole foreground process group
      os.killpg(driver.pid, signal.SIGINT)
    else:
      driver.send_signal(signal.SIGTERM)
    out, _ = driver.communicate(timeout=60)
  finally:
    if driver.poll() is None:
      os.killpg(driver.pid, signal.SIGKILL)
    if alive(child):
      os.kill(child, signal.SIGKILL)
      pytest.fail("the running point outlived the sweep")
  assert driver.returncode == 130, out
  name = "SIGINT" if how == "ctrl-c" else "SIGTERM"
  assert f"sweep: stopped by {name}; 2 point(s) not run" in out
  with open(d / "summary.csv") as f:
    rows = {row["name"]: row for row in csv.DictReader(f)}
  assert rows["model.cell=rnn"]["status"] == "interrupted"
  assert rows["model.cell=rnn"]["error"] == f"stopped by {name}"
  assert rows["model.cell=gru"]["status"] == rows["model.cell=lstm"]["status"] == "not run"
  assert not (d / "model.cell=gru").exists()
  assert (d / "sweep.png").stat().st_size > 0


def test_a_killed_sweep_takes_its_running_point_with_it(tmp_path):
  driver, d, child = start_sweep(tmp_path)
  os.killpg(driver.pid, signal.SIGKILL)
  driver.wait(timeout=30)
  deadline = time.time() + 30
  while alive(child) and time.time() < deadline:
    time.sleep(0.05)
  if alive(child):
    os.kill(child, signal.SIGKILL)
    pytest.fail("the point outlived a SIGKILLed sweep")


def test_the_error_is_the_exception_line_not_jax_boilerplate():
  """A real error raised under jit: JAX adds a note after the exception line."""
  raise_in_jit = ("import jax, jax.numpy as jnp\n"
                  "def f(x):\n  raise ValueError('model.cell: unknown cell nope')\n"
                  "jax.jit(f)(jnp.ones(3))\n")
  log = subprocess.run([sys.executable, "-c", raise_in_jit], capture_output=True, text=True,
                       timeout=120).stderr
  assert "JAX" in log.strip().splitlines()[-1]  # the boilerplate is the last line
  assert sweep.error_line("I1202 step 3 ...\n" + log) == "ValueError: model.cell: unknown cell nope"
  chained = ("Traceback (most recent call last):\n  File x\nKeyError: 'a'\n\nDuring handling...\n\n"
             "Traceback (most recent call last):\n  File y\n    raise Z\nRuntimeError: second\nnote\n")
  assert sweep.error_line(chained) == "RuntimeError: second"
  assert sweep.error_line("killed\n\n") == "killed"
  assert sweep.error_line("") == ""
