"""Data parallelism with ``jax.sharding``: the batch split over the mesh axis 'data', params replicated.

    mesh = make_mesh(config.num_devices)        # 0 = every device
    state = replicate(state, mesh)
    batch = shard_batch(batch, mesh)             # leading axis split across devices

jit then compiles one SPMD program: each device computes the gradient of its
slice and XLA inserts the all-reduce that the replicated parameters need. The
same code runs on one CPU (a mesh of one) or many devices; on CPU, several
devices are simulated with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
(set before jax is imported).

A stateful task's carry (``TrainState.carry``, leaves [B, ...]) is split like
the batch, so each device keeps the state of its own streams:
``place_state`` and ``state_shardings`` say so.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from recurrent.training.state import TrainState

AXIS = "data"


def make_mesh(num_devices: int) -> Mesh:
  """A 1-D mesh named 'data' over the first ``num_devices`` devices (0 = all)."""
  available = jax.devices()
  if num_devices < 0 or num_devices > len(available):
    raise ValueError(
        f"num_devices: must be in [0, {len(available)}] (0 = all), got {num_devices}")
  devices = available[:num_devices] if num_devices else available
  return Mesh(np.asarray(devices), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
  """Every leaf copied to every device of the mesh."""
  return jax.device_put(tree, replicated(mesh))


def state_shardings(mesh: Mesh):
  """The train state's layout, as a prefix of ``TrainState``: all replicated, the carry split over 'data'."""
  rep = replicated(mesh)
  return TrainState(rep, rep, rep, rep, rep, carry=NamedSharding(mesh, P(AXIS)))


def place_state(state, mesh: Mesh):
  """The train state on the mesh: replicated, except the carry, split over 'data' like the batch."""
  return replicate(state._replace(carry=()), mesh)._replace(
      carry=shard_batch(state.carry, mesh, "state.carry"))


def shard_batch(batch, mesh: Mesh, name: str = "batch"):
  """Splits the leading (batch) axis of every array leaf over 'data'; scalars are replicated.

  The leading axis must divide evenly over the devices (a ValueError names
  the leaf and both sizes otherwise).
  """
  n = mesh.shape[AXIS]
  split, rep = NamedSharding(mesh, P(AXIS)), replicated(mesh)

  def put(path, x):
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    if x.ndim == 0:
      return jax.device_put(x, rep)
    if x.shape[0] % n:
      raise ValueError(
          f"{name}{jax.tree_util.keystr(path)}: leading axis {x.shape[0]} does not divide over "
          f"{n} devices; make batch_size a multiple of num_devices")
    return jax.device_put(x, split)

  return jax.tree_util.tree_map_with_path(put, batch)


def place_eval_batch(batch, mesh: Mesh):
  """Shards an eval batch when its size divides over the devices, replicates it otherwise."""
  n = mesh.shape[AXIS]
  sizes = {np.shape(x)[0] for x in jax.tree.leaves(batch) if np.ndim(x)}
  if all(s % n == 0 for s in sizes):
    return shard_batch(batch, mesh)
  return replicate(batch, mesh)
