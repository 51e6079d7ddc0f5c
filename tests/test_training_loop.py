"""End to end on the synthetic sine task: train, metrics files, evaluate, NaN stop, restart checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recurrent.training import loop
from smoke_steps import sine_smoke
from recurrent.training.checkpoint import Checkpoints
from recurrent.training.metrics import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


smoke = sine_smoke


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A smoke run whose last save fails with a full disk, then restarted: a normal finished workdir."""
  import errno
  from orbax.checkpoint._src.path import atomicity
  workdir = tmp_path_factory.mktemp("run")
  finalize = atomicity.AtomicRenameTemporaryPath.finalize

  async def disk_full_at_step_6(self, *args, **kwargs):
    if Path(self.get_final()).name == "6":
      raise OSError(errno.ENOSPC, "No space left on device")
    return await finalize(self, *args, **kwargs)

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", disk_full_at_step_6)
    with pytest.raises(OSError) as full_disk:
      loop.train_and_evaluate(smoke(), workdir)
  latest_after_failure = Checkpoints(workdir / "checkpoints", 3, "mse", "min", True).latest_step()
  final = loop.train_and_evaluate(smoke(), workdir)  # the restart resumes from step 3
  return workdir, final, str(full_disk.value), latest_after_failure


def test_a_failed_save_keeps_the_previous_checkpoint_and_a_restart_finishes(trained):
  workdir, final, error, latest_after_failure = trained
  assert "No space left on device" in error and "step 3 is the last complete checkpoint" in error
  assert latest_after_failure == 3
  assert final["step"] == 6 and (workdir / "final.json").exists()


def test_train_writes_every_artifact(trained):
  workdir, final = trained[:2]
  for name in ("config.json", "metrics.jsonl", "loss_curve.png", "final.json", "sine_predictions.png"):
    assert (workdir / name).stat().st_size > 0, name
  assert list((workdir / "tb").glob("events.out.tfevents.*"))
  records = read_jsonl(workdir / "metrics.jsonl")
  train = [r for r in records if r["split"] == "train"]
  evals = [r for r in records if r["split"] == "eval"]
  assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6] and [r["step"] for r in evals] == [3, 6]
  for key in ("loss", "grad_norm", "grad_norm_clipped", "update_norm", "param_norm",
              "steps_per_s", "tokens_per_s"):
    assert all(np.isfinite(r[key]) for r in train), key
  assert evals[-1]["mse"] == pytest.approx(final["eval"]["mse"])
  # tokens/s = steps/s x (batch x window) for this task
  assert train[-1]["tokens_per_s"] == pytest.approx(train[-1]["steps_per_s"] * 8 * 25, rel=1e-6)


def test_profiled_steps_write_a_trace_and_an_operation_table_and_change_nothing(trained, tmp_path):
  workdir, final = trained[:2]
  profiled = loop.train_and_evaluate(smoke(), tmp_path, profile_steps=3)
  assert profiled["eval"] == final["eval"]  # bitwise: the trace changes no value
  table = (tmp_path / "profile_ops.txt").read_text()
  assert table.startswith("steps 2-4:") and "ms/step" in table
  assert list((tmp_path / "tb" / "plugins" / "profile").glob("*/*.xplane.pb"))  # TensorBoard's
  assert list((tmp_path / "tb" / "plugins" / "profile").glob("*/*.trace.json.gz"))  # Perfetto's
  with pytest.raises(ValueError, match="profile_steps"):
    loop.train_and_evaluate(smoke(), tmp_path / "bad", profile_steps=-1)


def test_tensorboard_holds_the_same_scalars(trained):
  import struct
  from tensorboardX.proto import event_pb2
  workdir = trained[0]
  got = {}  # a restart purges the steps it redoes: the later file's value wins, as in TensorBoard
  for path in sorted((workdir / "tb").glob("events.out.tfevents.*")):
    data = path.read_bytes()  # TFRecord: u64 length, u32 crc, payload, u32 crc
    while data:
      (n,) = struct.unpack("<Q", data[:8])
      event = event_pb2.Event.FromString(data[12:12 + n])
      data = data[16 + n:]
      got.update({event.step: v.simple_value for v in event.summary.value if v.tag == "train/loss"})
  records = read_jsonl(workdir / "metrics.jsonl")
  want = [(r["step"], r["loss"]) for r in records if r["split"] == "train"]
  np.testing.assert_allclose(sorted(got.items()), want, rtol=1e-6)


def test_checkpoints_keep_last_and_best(trained):
  workdir, final = trained[:2]
  ckpt = Checkpoints(workdir / "checkpoints", keep=1, metric="mse", mode="min", read_only=True)
  evals = {r["step"]: r["mse"] for r in read_jsonl(workdir / "metrics.jsonl") if r["split"] == "eval"}
  assert ckpt.latest_step() == 6
  assert ckpt.best_step() == min(evals, key=evals.get) == final["best_step"]


def test_evaluate_reproduces_the_eval_metrics(trained):
  workdir, final = trained[:2]
  config = loop.load_config(workdir)
  evals = {r["step"]: r["mse"] for r in read_jsonl(workdir / "metrics.jsonl") if r["split"] == "eval"}
  best = loop.evaluate(config, workdir, "best")
  assert best["step"] == final["best_step"]
  assert best["mse"] == pytest.approx(evals[best["step"]], rel=1e-6)
  with pytest.raises(ValueError, match=r"checkpoint: no step 5 .*saved steps are \[3, 6\]"):
    loop.evaluate(config, workdir, "5")


def test_restart_with_a_different_config_lists_the_fields(trained, tmp_path):
  workdir = trained[0]
  with pytest.raises(ValueError, match=r"batch_size: 8 -> 4.*optim\.learning_rate"):
    loop.train_and_evaluate(smoke(batch_size=4, **{"optim.learning_rate": 0.1}), workdir)


def test_more_steps_resumes_and_extends_the_run(trained, tmp_path):
  import shutil
  workdir = tmp_path / "run"
  shutil.copytree(trained[0], workdir)
  final = loop.train_and_evaluate(smoke(num_steps=8), workdir)
  assert final["step"] == 8
  steps = [r["step"] for r in read_jsonl(workdir / "metrics.jsonl") if r["split"] == "train"]
  assert steps == list(range(1, 9))  # no duplicate records for the steps already done
  assert json.loads((workdir / "config.json").read_text())["num_steps"] == 8


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  # Plain SGD at a huge rate: the loss is finite for the first steps, then Inf or NaN.
  config = smoke(num_steps=12, checkpoint_every=1, log_every=1, eval_every=100,
                 **{"optim.name": "sgd", "optim.learning_rate": 1e15, "optim.clip_value": 0.0})
  with pytest.raises(FloatingPointError, match=r"NaN/Inf at step (\d+)") as err:
    loop.train_and_evaluate(config, tmp_path)
  bad = int(__import__("re").search(r"step (\d+)", str(err.value)).group(1))
  ckpt = Checkpoints(tmp_path / "checkpoints", keep=3, metric="mse", mode="min", read_only=True)
  assert ckpt.latest_step() == bad  # the state after `bad` good steps; nothing after it saved
  records = read_jsonl(tmp_path / "metrics.jsonl")
  assert all(np.isfinite(r["loss"]) for r in records if r["step"] <= bad)


def test_bad_values_fail_naming_the_field_before_training(tmp_path):
  with pytest.raises(ValueError, match="batch_size: must be an integer >= 1, got 0"):
    loop.train_and_evaluate(smoke(batch_size=0), tmp_path)
  with pytest.raises(ValueError, match="task.name: unknown task 'nope'"):
    loop.train_and_evaluate(smoke(**{"task.name": "nope"}), tmp_path)
  with pytest.raises(ValueError, match="optim.name"):
    loop.train_and_evaluate(smoke(**{"optim.name": "adamm"}), tmp_path)
  assert not (Path(tmp_path) / "config.json").exists()


def test_data_parallel_on_four_devices_matches_one(trained, tmp_path):
  """Batch split over 4 simulated CPU devices (a subprocess: the flag must precede jax's import)."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
  four = tmp_path / "four"
  out = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--config=configs/sine.py:smoke",
       f"--workdir={four}", "--config.num_devices=4"],
      cwd=ROOT, env=env, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "mesh: 4 device(s)" in out.stderr

  get = lambda d, split: [(r["step"], r["loss"]) for r in read_jsonl(d / "metrics.jsonl")
                          if r["split"] == split]
  resumed_at = trained[3]  # the trained run resumed there: its next train record averages fewer steps
  partial = min(s for s, _ in get(trained[0], "train") if s > resumed_at)
  for split in ("train", "eval"):
    a, b = get(four, split), get(trained[0], split)
    assert [s for s, _ in a] == [s for s, _ in b] and len(a) >= 2
    if split == "train":
      a, b = [r for r in a if r[0] != partial], [r for r in b if r[0] != partial]
    np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=2e-5, atol=1e-7)


def test_train_rate_excludes_evaluation_time(tmp_path, monkeypatch):
  # A fake clock: each training batch costs 10 s, each evaluation 1000 s. Evaluating at step 2
  # between logs at 4 and 8 must not change the logged rate, 1 step per 10 s (the first step,
  # compilation, is kept out of the first window).
  import dataclasses
  import time
  import types
  offset = [0.0]
  monkeypatch.setattr(loop, "time", types.SimpleNamespace(
      perf_counter=lambda: time.perf_counter() + offset[0]))
  get_task = loop.get_task

  def slow_task(config):
    task = get_task(config)
    def train_batch(step):
      offset[0] += 10.0
      return task.train_batch(step)
    return dataclasses.replace(task, train_batch=train_batch)

  report = loop._report
  def slow_report(*args):
    offset[0] += 1000.0
    return report(*args)

  monkeypatch.setattr(loop, "get_task", slow_task)
  monkeypatch.setattr(loop, "_report", slow_report)
  loop.train_and_evaluate(smoke(num_steps=8, log_every=4, eval_every=2, checkpoint_every=100),
                          tmp_path)
  rates = [r["steps_per_s"] for r in read_jsonl(tmp_path / "metrics.jsonl") if r["split"] == "train"]
  assert len(rates) == 2
  np.testing.assert_allclose(rates, 0.1, rtol=0.05)  # wall time of the real steps: well under 5 %
