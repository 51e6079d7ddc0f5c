"""Kill -9 a training process at an arbitrary moment, restart it: bitwise the parameters of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from configs import sine
from recurrent.training import loop
from recurrent.training.checkpoint import Checkpoints

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = {"num_steps": 400, "checkpoint_every": 10, "log_every": 100, "eval_every": 200,
             "keep_checkpoints": 2}


def config():
  c = sine.get_config("smoke")
  for k, v in OVERRIDES.items():
    c[k] = v
  return c


def final_state(workdir):
  setup = loop._Setup(config(), Path(workdir), read_only=True)
  return setup.ckpt.restore(setup.ckpt.latest_step(), like=setup.initial_state())


def finished_checkpoints(workdir):
  d = Path(workdir) / "checkpoints"
  return [p for p in d.iterdir() if p.name.isdigit()] if d.exists() else []


@pytest.mark.slow  # a real SIGKILL; the default suite resumes bitwise after a stop
def test_sigkill_then_restart_gives_bitwise_the_same_parameters(tmp_path):
  killed = tmp_path / "killed"
  cmd = [sys.executable, "-m", "experiments.train", "--config=configs/sine.py:smoke",
         f"--workdir={killed}"] + [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
  try:
    deadline = time.time() + 240
    while not finished_checkpoints(killed):
      assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
      assert time.time() < deadline, "no checkpoint within 240 s"
      time.sleep(0.05)
    time.sleep(np.random.default_rng().uniform(0.0, 0.3))  # any moment, mid-save included
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == -signal.SIGKILL
  if (killed / "final.json").exists():
    pytest.fail("the run finished before it was killed; raise num_steps")
  resumed_from = Checkpoints(killed / "checkpoints", 2, "mse", "min", read_only=True).latest_step()
  assert 0 < resumed_from < OVERRIDES["num_steps"]

  loop.train_and_evaluate(config(), killed)                 # restart on the killed workdir
  loop.train_and_evaluate(config(), tmp_path / "straight")  # never interrupted
  a, b = final_state(killed), final_state(tmp_path / "straight")
  assert int(a.step) == int(b.step) == OVERRIDES["num_steps"]
  for x, y in zip(jax.tree.leaves((a.params, a.opt_state, a.rng)),
                  jax.tree.leaves((b.params, b.opt_state, b.rng))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
