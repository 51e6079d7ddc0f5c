"""What a hostile user does to a workdir: two trainers, a bad first start, a shorter budget, a damaged checkpoint.

Each test reproduces the fault (issue 18) on a copy of one trained smoke workdir,
with real subprocesses where the fault involves another process.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recurrent.training import loop
from smoke_steps import sine_smoke
from recurrent.training import workdir as workdir_lib
from recurrent.training.metrics import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


smoke = sine_smoke


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A finished smoke run: checkpoints at steps 3 and 6."""
  workdir = tmp_path_factory.mktemp("trained")
  loop.train_and_evaluate(smoke(), workdir)
  return workdir


@pytest.fixture
def run(trained, tmp_path):
  """A private copy of the trained workdir."""
  shutil.copytree(trained, tmp_path / "run")
  return tmp_path / "run"


HOLD_LOCK = """
import sys, time
from recurrent.training import workdir
with workdir.lock(sys.argv[1]):
  print("locked", flush=True)
  time.sleep(120)
"""


def test_a_second_trainer_fails_naming_the_pid_and_a_killed_holder_releases_the_lock(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(workdir_lib.WorkdirInUse, match=f"workdir {tmp_path} is in use by pid {holder.pid}"):
      loop.train_and_evaluate(smoke(), tmp_path)
    assert not (tmp_path / "config.json").exists() and not (tmp_path / "checkpoints").exists()
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
  with workdir_lib.lock(tmp_path):  # the kernel dropped the killed holder's lock
    assert (tmp_path / workdir_lib.LOCK_FILE).read_text().strip() == str(os.getpid())


@pytest.mark.slow
def test_two_real_trainers_on_one_workdir(tmp_path):
  """experiments.train twice at once: the second exits naming the first's pid; the first finishes."""
  cmd = [sys.executable, "-m", "experiments.train", "--config=configs/sine.py:smoke",
         f"--workdir={tmp_path}", "--config.num_steps=200", "--config.eval_every=200",
         "--config.checkpoint_every=200", "--config.log_every=100"]
  first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 60
    while not (tmp_path / workdir_lib.LOCK_FILE).exists() or \
        not (tmp_path / workdir_lib.LOCK_FILE).read_text().strip():
      assert time.time() < deadline and first.poll() is None
      time.sleep(0.05)
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    assert f"is in use by pid {first.pid}" in second.stderr
    assert first.wait(timeout=180) == 0
  finally:
    if first.poll() is None:
      first.kill()
  steps = [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl") if r["split"] == "train"]
  assert steps == [100, 200]  # written once, by the first trainer alone


@pytest.mark.parametrize("field, value", [
    ("model.cell", "nope"), ("model.hidden_sizes", ()), ("model.dropout", 1.5),
    ("model.merge", "nope")])
def test_a_failed_first_start_writes_nothing_and_the_corrected_run_starts(tmp_path, field, value):
  bad = smoke(**{field: value, "model.bidirectional": field == "model.merge"})
  with pytest.raises(Exception, match=field.split(".")[-1]):
    loop.train_and_evaluate(bad, tmp_path)
  assert not (tmp_path / "config.json").exists()
  assert not workdir_lib.checkpoint_steps(tmp_path)
  if field == "model.cell":  # the corrected command runs on the same workdir
    assert loop.train_and_evaluate(smoke(num_steps=3), tmp_path)["step"] == 3


def test_a_batch_that_does_not_divide_over_the_devices_fails_before_writing(tmp_path):
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
  out = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--config=configs/sine.py:smoke",
       f"--workdir={tmp_path}", "--config.num_devices=2", "--config.batch_size=7"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode != 0
  assert "does not divide over 2 devices; make batch_size a multiple of num_devices" in out.stderr
  assert not (tmp_path / "config.json").exists()


def test_a_workdir_without_checkpoint_takes_a_new_config_and_says_so(tmp_path, caplog):
  loop.write_or_check_config(smoke(batch_size=4), tmp_path)  # a first start that died before step 3
  loop.train_and_evaluate(smoke(num_steps=3), tmp_path)
  assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 8
  assert "has no checkpoint: its config.json is replaced (batch_size: 4 -> 8)" in caplog.text


def test_a_workdir_with_checkpoints_refuses_another_config_naming_the_override(run):
  before = (run / "config.json").read_text()
  with pytest.raises(ValueError, match=r"optim\.learning_rate: 0\.003 -> 0\.001.*"
                                       r"--allow_config_change=optim\.learning_rate"):
    loop.train_and_evaluate(smoke(num_steps=8, **{"optim.learning_rate": 1e-3}), run)
  assert (run / "config.json").read_text() == before


def test_fewer_steps_than_the_latest_checkpoint_is_refused_naming_both(run):
  before = {p: (run / p).read_bytes() for p in ("config.json", "final.json", "metrics.jsonl")}
  with pytest.raises(ValueError, match=r"num_steps: 4 is below the latest checkpoint, step 6"):
    loop.train_and_evaluate(smoke(num_steps=4), run)
  assert {p: (run / p).read_bytes() for p in before} == before


def test_after_a_nan_stop_the_learning_rate_can_be_lowered_and_the_change_is_recorded(tmp_path,
                                                                                     monkeypatch):
  """A stand-in for a rate that is too high: from step 4 on, the loss is NaN while learning_rate > 2e-3."""
  import dataclasses
  import jax.numpy as jnp
  from recurrent.tasks import get_task

  def nan_when_fast(config):
    task = get_task(config)
    fast = config.optim.learning_rate > 2e-3
    def train_batch(step):
      return {**task.train_batch(step), "poison": jnp.float32(jnp.nan if fast and step >= 4 else 0)}
    def loss_fn(params, batch, rng):
      loss, metrics = task.loss_fn(params, {k: v for k, v in batch.items() if k != "poison"}, rng)
      return loss + batch.get("poison", 0.0), metrics
    return dataclasses.replace(task, train_batch=train_batch, loss_fn=loss_fn)

  monkeypatch.setattr(loop, "get_task", nan_when_fast)
  fields = dict(num_steps=8, checkpoint_every=1, log_every=1, eval_every=100)
  with pytest.raises(FloatingPointError, match="NaN/Inf at step 4.*last good checkpoint \\(step 4\\).*"
                                               "--allow_config_change=optim.learning_rate"):
    loop.train_and_evaluate(smoke(**fields), tmp_path)
  calm = smoke(**fields, **{"optim.learning_rate": 1e-3})
  with pytest.raises(ValueError, match="optim.learning_rate"):
    loop.train_and_evaluate(calm, tmp_path)  # not without saying so
  final = loop.train_and_evaluate(calm, tmp_path, allow_config_change=("optim.learning_rate",))
  assert final["step"] == 8
  (change,) = read_jsonl(tmp_path / "config_changes.jsonl")
  assert change["step"] == 4 and change["changes"] == {"optim.learning_rate": [3e-3, 1e-3]}
  assert json.loads((tmp_path / "config.json").read_text())["optim"]["learning_rate"] == 1e-3
  with pytest.raises(ValueError, match="allow_config_change: no config field"):
    loop.train_and_evaluate(calm, tmp_path, allow_config_change=("optim.lr",))


@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_a_damaged_checkpoint_names_the_step_and_the_intact_one_and_restore_step_resumes(run, damage):
  meta = run / "checkpoints" / "6" / "default" / "_METADATA"
  if damage == "deleted":
    meta.unlink()
  elif damage == "garbage":
    meta.write_bytes(os.urandom(200))
  with pytest.raises(workdir_lib.CheckpointError,
                     match=r"step 6 in .* cannot be restored .*step 3 restores intact: restart with "
                           r"--restore_step=3"):
    loop.train_and_evaluate(smoke(num_steps=8), run)
  with pytest.raises(workdir_lib.CheckpointError, match="step 6 .* cannot be restored"):
    loop.evaluate(smoke(), run, "6")
  if damage != "deleted":
    return
  final = loop.train_and_evaluate(smoke(num_steps=8), run, restore_step=3)
  assert final["step"] == 8
  assert (run / workdir_lib.SET_ASIDE / "6" / "default").is_dir()  # set aside, not deleted
  steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if r["split"] == "train"]
  assert steps == list(range(1, 9))
  with pytest.raises(ValueError, match=r"restore_step: no checkpoint 5 .*saved steps are \[6, 8\]"):
    loop.train_and_evaluate(smoke(num_steps=8), run, restore_step=5)


def test_evaluate_writes_under_its_own_folder_and_leaves_the_run_alone(run):
  kept = {p.relative_to(run): p.read_bytes() for p in run.iterdir() if p.is_file()}
  out = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={run}",
                        "--checkpoint=3"], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert {p.relative_to(run): p.read_bytes() for p in run.iterdir() if p.is_file()} == kept
  own = run / "evaluate" / "step_3"
  assert (own / "sine_predictions.png").stat().st_size > 0
  assert json.loads((own / "evaluate.json").read_text())["step"] == 3


def test_a_damaged_config_json_is_named_and_replaced_only_without_checkpoints(run, tmp_path):
  (run / "config.json").write_bytes(b'{"batch_size": 8, "mod\xff')
  with pytest.raises(ValueError, match=r"config.json: damaged, not the JSON of a config"):
    loop.train_and_evaluate(smoke(num_steps=8), run)
  with pytest.raises(ValueError, match=r"config.json: damaged"):
    loop.load_config(run)
  fresh = tmp_path / "fresh"
  fresh.mkdir()
  (fresh / "config.json").write_text('{"batch_size": ')  # damaged by hand, no checkpoint yet
  assert loop.train_and_evaluate(smoke(num_steps=3), fresh)["step"] == 3
  assert loop.load_config(fresh).num_steps == 3


def test_a_metrics_line_cut_short_by_a_kill_is_dropped_on_resume(run):
  with (run / "metrics.jsonl").open("a") as f:
    f.write('{"step": 7, "split": "tra')  # SIGKILL in the middle of a write
  final = loop.train_and_evaluate(smoke(num_steps=8), run)
  assert final["step"] == 8
  steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if r["split"] == "train"]
  assert steps == list(range(1, 9))
  (run / "metrics.jsonl").write_text('{"step": 1}\n{"st\n{"step": 2}\n')
  with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON record"):
    read_jsonl(run / "metrics.jsonl")
