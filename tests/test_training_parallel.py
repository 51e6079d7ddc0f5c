"""Data parallel on 4 simulated CPU devices gives the losses of one device (to float tolerance)."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from configs import sine
from recurrent.training import loop, parallel
from recurrent.training.metrics import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def test_four_devices_match_one(tmp_path):
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
  four = tmp_path / "four"
  out = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--config=configs/sine.py:smoke",
       f"--workdir={four}", "--config.num_devices=4"],
      cwd=ROOT, env=env, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "mesh: 4 device(s)" in out.stderr

  config = sine.get_config("smoke")
  loop.train_and_evaluate(config, tmp_path / "one")
  get = lambda d, split: [(r["step"], r["loss"]) for r in read_jsonl(d / "metrics.jsonl")
                          if r["split"] == split]
  for split in ("train", "eval"):
    a, b = get(four, split), get(tmp_path / "one", split)
    assert [s for s, _ in a] == [s for s, _ in b] and len(a) >= 2
    np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=2e-5, atol=1e-7)


def test_batch_is_split_and_bad_sizes_fail():
  mesh = parallel.make_mesh(1)
  b = parallel.shard_batch({"x": np.zeros((4, 3)), "n": np.int32(2)}, mesh)
  assert b["x"].sharding.spec == jax.sharding.PartitionSpec("data")
  with pytest.raises(ValueError, match=rf"num_devices: must be in \[0, {len(jax.devices())}\]"):
    parallel.make_mesh(len(jax.devices()) + 1)
