"""The mesh and batch sharding helpers (the 4-device run = 1-device run test is in test_training_loop.py)."""

import jax
import numpy as np
import pytest

from recurrent.training import parallel


def test_batch_is_split_and_bad_sizes_fail():
  mesh = parallel.make_mesh(1)
  b = parallel.shard_batch({"x": np.zeros((4, 3)), "n": np.int32(2)}, mesh)
  assert b["x"].sharding.spec == jax.sharding.PartitionSpec("data")
  with pytest.raises(ValueError, match=rf"num_devices: must be in \[0, {len(jax.devices())}\]"):
    parallel.make_mesh(len(jax.devices()) + 1)
