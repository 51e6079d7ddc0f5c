"""Several processes, one program: ``jax.distributed`` for multi-host data parallelism.

    distributed.define_flags()                    # in a binary, next to --config and --workdir
    distributed.initialize_from_flags()           # in main(), before anything touches a device
    local, batch = distributed.train_batch(task, step, mesh, batch_size)  # its rows, the global batch
    distributed.run_on_main(lambda: write(...), "writing config.json")  # output once, errors everywhere

One JAX process per host (or per group of accelerators) runs the same
program; ``jax.distributed.initialize`` connects them to a coordination
service on process 0 (``--coordinator_address=HOST:PORT``), after which
``jax.devices()`` lists every process's devices and the mesh axis 'data'
spans all of them. On CPU the collectives go over gloo (TCP), the default of
the pinned jax; on GPU over NCCL, on TPU over ICI. With none of the flags set
and no ``JAX_COORDINATOR_ADDRESS`` in the environment nothing is initialised
and a run is exactly the single-process run. ``--distributed`` asks JAX to
detect the cluster (SLURM, Cloud TPU pod slices, Open MPI, Kubernetes).

Data: the global batch of a step is a pure function of (seed, step); process
p of P owns the rows its devices own, ``[p B/P, (p+1) B/P)`` on the usual
mesh, read off the sharding (``local_rows``), builds only those, and
``jax.make_array_from_process_local_data`` joins the slices into one global
array. A task builds a slice of its batch when its ``train_batch`` takes a
``rows`` argument,

    train_batch(step, rows=None)   # rows: a slice of the global batch; None = all of it

which must return exactly ``train_batch(step)[rows]`` (leaf by leaf; scalar
leaves whole), padded to the *global* batch's length (``batching.pad(...,
rows=)`` does that); the first step of a multi-process run checks it. A task
whose ``train_batch`` takes only the step is built whole on every process and
cut (``task_rows``). So a run on 2 processes x 2 devices sees bitwise the
batches of a run on 1 process x 4 devices, and the gradient all-reduce makes
them train the same model. Evaluation batches are split the same way: each
eval step's (total, count) is reduced over the whole mesh inside the jitted
step, once, and every process reads the same replicated result.

Failures: a process that raises leaves the others waiting in a collective;
JAX's coordination service then stops every process within
``--distributed_timeout`` (the shutdown barrier) or, for a process that
vanished (SIGKILL, a lost host), within ``--heartbeat_timeout``, naming the
dead task. Checks whose outcome could differ between processes (the config,
the workdir's config.json) are decided collectively, so that every process
raises the same error at the same point and the run ends at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import socket
import sys
import time
import traceback
from typing import Any, Callable

import jax
import numpy as np
from absl import flags, logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from recurrent.checks import check_int
from recurrent.training import parallel


def define_flags() -> None:
  """The flags that make a binary one process of a multi-process run (all optional)."""
  flags.DEFINE_string("coordinator_address", None,
                      "HOST:PORT of process 0's coordination service (or $JAX_COORDINATOR_ADDRESS); "
                      "set to run as one of several processes")
  flags.DEFINE_integer("num_processes", None, "how many processes the run has")
  flags.DEFINE_integer("process_id", None, "this process's index, 0 .. num_processes-1")
  flags.DEFINE_bool("distributed", False,
                    "initialise jax.distributed from the cluster (SLURM, TPU pod slice, Open MPI, "
                    "Kubernetes) for whatever the three flags above leave unset")
  flags.DEFINE_integer("distributed_timeout", 300,
                       "seconds to wait for every process to connect, and at exit for every "
                       "process to finish")
  flags.DEFINE_integer("heartbeat_timeout", 100,
                       "seconds of silence after which a process is declared dead and every "
                       "other process stops")


def initialize_from_flags() -> None:
  """``initialize`` with the values of the flags from ``define_flags``."""
  f = flags.FLAGS
  initialize(f.coordinator_address, f.num_processes, f.process_id, detect=f.distributed,
             timeout_s=f.distributed_timeout, heartbeat_timeout_s=f.heartbeat_timeout)


def requested(coordinator_address=None, num_processes=None, process_id=None,
              detect: bool = False) -> bool:
  """Whether a multi-process run was asked for (by a flag or $JAX_COORDINATOR_ADDRESS)."""
  return detect or any(v is not None for v in (coordinator_address, num_processes, process_id)) \
      or bool(os.environ.get("JAX_COORDINATOR_ADDRESS"))


def check_topology(coordinator_address, num_processes, process_id) -> tuple[str, int]:
  """Validates the explicit values; returns (host, port). Fails naming the flag."""
  if coordinator_address is None:
    raise ValueError("coordinator_address: required with --num_processes/--process_id (or set "
                     "JAX_COORDINATOR_ADDRESS, or pass --distributed to detect the cluster)")
  host, _, port = coordinator_address.rpartition(":")
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise ValueError(f"coordinator_address: must be HOST:PORT, got {coordinator_address!r}")
  check_int("num_processes", num_processes, note="required with --coordinator_address")
  check_int("process_id", process_id, 0, below=num_processes, note=f"num_processes={num_processes}")
  return host.strip("[]"), int(port)


def wait_for_coordinator(host: str, port: int, address: str, timeout_s: float) -> None:
  """Polls HOST:PORT until it accepts a TCP connection; a ConnectionError naming it otherwise.

  JAX's own client aborts the process (a C++ fatal error that does not name
  the address) when it cannot register in time; this check fails first, in
  Python, with the address in the message.
  """
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      with socket.create_connection((host, port), timeout=min(2.0, max(timeout_s, 0.1))):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise ConnectionError(
            f"coordinator_address: nothing answers at {address} after {timeout_s:g} s ({e}); "
            f"process 0 must run there, started with the same --coordinator_address") from None
      time.sleep(0.2)


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, detect: bool = False, timeout_s: int = 300,
               heartbeat_timeout_s: int = 100) -> bool:
  """Calls ``jax.distributed.initialize`` when asked (see ``requested``); True if it did.

  Must run before anything touches a device (``jax.devices()``, a jit, a
  device_put): a RuntimeError says so otherwise.
  """
  if not requested(coordinator_address, num_processes, process_id, detect):
    return False
  check_int("distributed_timeout", timeout_s, note="seconds")
  check_int("heartbeat_timeout", heartbeat_timeout_s, note="seconds")
  coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  if not detect or None not in (coordinator_address, num_processes, process_id):
    host, port = check_topology(coordinator_address, num_processes, process_id)
    logging.info("process %d/%d: connecting to the coordinator at %s (timeout %d s)", process_id,
                 num_processes, coordinator_address, timeout_s)
    if process_id != 0:
      wait_for_coordinator(host, port, coordinator_address, timeout_s)
  from jax._src import xla_bridge  # the check JAX makes itself, asked first for a clearer message
  if xla_bridge.backends_are_initialized():
    raise RuntimeError("distributed: jax.distributed.initialize must run before anything touches "
                       "a device (jax.devices(), a jit, a device_put); call it first in main()")
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               initialization_timeout=timeout_s,
                               heartbeat_timeout_seconds=heartbeat_timeout_s,
                               shutdown_timeout_seconds=timeout_s)
  except ValueError as e:  # JAX's cluster detection found nothing to fill in the unset values
    raise ValueError(f"distributed: JAX found no cluster (SLURM, Cloud TPU, Open MPI, Kubernetes) to "
                     f"read the unset values from ({e}); pass --coordinator_address, "
                     "--num_processes and --process_id") from e
  p, n = jax.process_index(), jax.process_count()
  logging.info("process %d/%d on %s: %d local device(s) of %d (%s); coordinator %s%s", p, n,
               socket.gethostname(), jax.local_device_count(), jax.device_count(),
               jax.devices()[0].platform, coordinator_address or "detected by JAX",
               "" if p == 0 else "; only errors are logged here, process 0 writes the outputs")
  if p != 0:
    logging.set_verbosity(logging.ERROR)
  return True


@contextlib.contextmanager
def fail_fast(grace_s: float = 2.0):
  """In a run of several processes, an exception ends this process soon (status 1), traceback printed.

  Left to Python, a process that raised would wait in JAX's shutdown barrier
  for ``--distributed_timeout`` while the others wait in their next
  collective. Exiting at once lets the launcher (or ``srun
  --kill-on-bad-exit``) stop the others now, and the coordination service
  declares this process dead within ``--heartbeat_timeout`` otherwise. It
  waits ``grace_s`` first: when this process exits, JAX aborts the others,
  and those that hit the same error a moment later should print it. The
  ``finally`` blocks inside (the workdir lock, the metric writer) have run
  by then. One process: the exception propagates as usual.
  """
  try:
    yield
  except Exception as e:  # noqa: BLE001 - re-raised in one process; printed, then exit, in several
    if not jax.distributed.is_initialized():
      raise
    traceback.print_exc()
    if isinstance(e, jax.errors.JaxRuntimeError):  # a collective whose peer is gone: say where to look
      print(f"process {jax.process_index()}: a collective failed ({str(e).splitlines()[0][:200]}); "
            "another process probably failed first: see its output", file=sys.stderr)
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(grace_s)  # others failing at the same point (a bad value) print their errors too
    os._exit(1)


def is_main() -> bool:
  """True in the process that writes logs, metrics, figures and final.json (process 0)."""
  return jax.process_index() == 0


def make_mesh(num_devices: int, batch_size: int) -> Mesh:
  """``parallel.make_mesh``; across processes it spans them all and the batch must divide over it.

  Fails naming the numbers when ``num_devices`` would leave a process out or
  ``batch_size`` does not divide over processes x devices.
  """
  if jax.process_count() == 1:
    return parallel.make_mesh(num_devices)
  n, p = jax.device_count(), jax.process_count()
  if num_devices not in (0, n):
    raise ValueError(f"num_devices: across {p} processes the mesh spans every process's devices; "
                     f"set 0 or {n}, got {num_devices}")
  if batch_size % n:
    raise ValueError(f"batch_size: {batch_size} does not divide over {p} processes x "
                     f"{jax.local_device_count()} device(s) = {n} devices; make it a multiple of {n}")
  return parallel.make_mesh(0)


def local_rows(size: int, mesh: Mesh) -> tuple[int, int]:
  """[start, stop) of the rows of a global [size, ...] array that this process's devices own."""
  idx = NamedSharding(mesh, P(parallel.AXIS)).addressable_devices_indices_map((size,))
  spans = sorted({(s[0].start or 0, size if s[0].stop is None else s[0].stop) for s in idx.values()})
  for (_, stop), (start, _) in zip(spans, spans[1:]):
    if stop != start:
      raise ValueError(f"mesh: this process's devices own rows {spans} of the batch, not one "
                       "contiguous block; order the mesh's devices by process")
  return spans[0][0], spans[-1][1]


def takes_rows(train_batch: Callable) -> bool:
  """Whether a task's ``train_batch`` can build a slice of its batch (it has a ``rows`` parameter)."""
  try:
    return "rows" in inspect.signature(train_batch).parameters
  except (TypeError, ValueError):  # a builtin or C callable: no signature to read
    return False


def task_rows(task, step: int, rows: slice):
  """Rows ``rows`` of the global batch of ``step``: built alone if the task can, else cut from the whole."""
  if takes_rows(task.train_batch):
    return task.train_batch(step, rows=rows)
  return jax.tree.map(lambda x: x[rows] if np.ndim(x) else x, task.train_batch(step))


def check_rows(task, step: int, rows: slice, local, whole=None) -> None:
  """Fails naming the leaf unless ``local`` (the task's own slice) equals ``rows`` of the whole batch."""
  whole = jax.tree_util.tree_flatten_with_path(task.train_batch(step) if whole is None else whole)[0]
  mine = jax.tree_util.tree_flatten_with_path(local)[0]
  where = f"task.train_batch({step}, rows=slice({rows.start}, {rows.stop}))"
  if [k for k, _ in whole] != [k for k, _ in mine]:
    raise ValueError(f"{where}: leaves {[jax.tree_util.keystr(k) for k, _ in mine]}, but the "
                     f"whole batch has {[jax.tree_util.keystr(k) for k, _ in whole]}")
  for (path, w), (_, m) in zip(whole, mine):
    w, m = np.asarray(w), np.asarray(m)
    expected = w[rows] if w.ndim else w
    if expected.shape != m.shape or expected.dtype != m.dtype or not np.array_equal(expected, m):
      what = "holds other values than" if (expected.shape, expected.dtype) == (m.shape, m.dtype) \
          else "differs from"
      raise ValueError(
          f"{where}{jax.tree_util.keystr(path)}: {m.dtype}{list(m.shape)} {what} rows "
          f"{rows.start}:{rows.stop} of the whole batch ({expected.dtype}{list(expected.shape)}); "
          "a task's slice must equal the same rows of its whole batch, padded to the whole "
          "batch's length")


def train_batch(task, step: int, mesh: Mesh, batch_size: int, check: bool = False):
  """(this process's rows, the global batch on the mesh) of training step ``step``.

  One process: the whole batch, sharded with ``parallel.shard_batch``. Several:
  process p builds its rows only (``task_rows``; ``check`` compares them with
  the whole batch first) and ``jax.make_array_from_process_local_data`` joins
  them into [batch_size, ...] global arrays; scalar leaves are replicated.
  """
  if jax.process_count() == 1:
    batch = task.train_batch(step)
    return batch, parallel.shard_batch(batch, mesh)
  start, stop = local_rows(batch_size, mesh)
  local = task_rows(task, step, slice(start, stop))
  if check:
    whole = task.train_batch(step)
    if takes_rows(task.train_batch):
      check_rows(task, step, slice(start, stop), local, whole)
    check_same_data(whole, step)
    logging.info("data: each process builds %s of each batch of %d (this one rows %d:%d)",
                 "only its rows" if takes_rows(task.train_batch) else
                 "the whole batch and keeps its rows (task.train_batch takes no rows)",
                 batch_size, start, stop)
  sharded, rep = NamedSharding(mesh, P(parallel.AXIS)), parallel.replicated(mesh)

  def put(path, x):
    x = np.asarray(x)
    if x.ndim == 0:
      return jax.make_array_from_process_local_data(rep, x, x.shape)
    if x.shape[0] != stop - start:
      raise ValueError(f"task.train_batch{jax.tree_util.keystr(path)}: {x.shape[0]} rows for rows "
                       f"{start}:{stop} of a batch of {batch_size}; expected {stop - start}")
    return jax.make_array_from_process_local_data(sharded, x, (batch_size,) + x.shape[1:])

  return local, jax.tree_util.tree_map_with_path(put, local)


def place_state(state, mesh: Mesh):
  """``parallel.place_state`` across processes, each process giving only what it holds.

  Every leaf but the carry is replicated from this process's copy (the same
  on every process: built from the seed); a stateful task's carry [B, ...]
  is split over 'data' like the batch, each process giving the rows of its
  own streams. ``jax.make_array_from_process_local_data`` throughout: no
  cross-process check per leaf, as ``jax.device_put`` would make.
  """
  if jax.process_count() == 1:
    return parallel.place_state(state, mesh)
  sharded, rep = NamedSharding(mesh, P(parallel.AXIS)), parallel.replicated(mesh)

  def rows(x):
    x = np.asarray(x)
    start, stop = local_rows(x.shape[0], mesh)
    return jax.make_array_from_process_local_data(sharded, x[start:stop], x.shape)

  whole = lambda x: jax.make_array_from_process_local_data(rep, np.asarray(x), np.shape(x))
  return jax.tree.map(whole, state._replace(carry=()))._replace(carry=jax.tree.map(rows, state.carry))


def check_same_data(batch, step: int) -> None:
  """Fails on every process unless all built the same whole batch for ``step`` (a SHA-256 of its leaves).

  The same config read on hosts with different data files (another copy of
  a corpus, another $RECURRENT_DATA_DIR) would otherwise train on different
  data per process, or fail later in a collective with mismatched shapes.
  """
  digest = hashlib.sha256()
  for path, x in jax.tree_util.tree_flatten_with_path(batch)[0]:
    x = np.ascontiguousarray(np.asarray(x))
    digest.update(f"{jax.tree_util.keystr(path)}:{x.dtype}:{x.shape}".encode())
    digest.update(x.tobytes())
  digests = allgather_json(digest.hexdigest())
  differ = [p for p, d in enumerate(digests) if d != digests[0]]
  if differ:
    raise ValueError(
        f"data: the processes built different batches for step {step} from the same config (process(es) "
        f"{differ} differ from process 0); every process must read the same data files (check "
        "the task's path and $RECURRENT_DATA_DIR on every host)")


def process_sum(value: float) -> float:
  """The sum of ``value`` over the processes, on every process (a host-side count, e.g. tokens)."""
  if jax.process_count() == 1:
    return value
  return float(np.sum(multihost_utils.process_allgather(np.array([value], np.float64))))


def place_eval_batch(batch, mesh: Mesh):
  """``parallel.place_eval_batch`` across processes: split when it divides, replicated otherwise.

  Every process reads the whole eval batch (eval batches are fixed arrays or
  cheap windows) and keeps its rows, as in training; the eval step's (total,
  count) are then sums over the whole mesh, computed once inside the jit.
  """
  if jax.process_count() == 1:
    return parallel.place_eval_batch(batch, mesh)
  n = mesh.shape[parallel.AXIS]
  sizes = {np.shape(x)[0] for x in jax.tree.leaves(batch) if np.ndim(x)}
  split = all(s % n == 0 for s in sizes)
  sharded, rep = NamedSharding(mesh, P(parallel.AXIS)), parallel.replicated(mesh)

  def put(x):
    x = np.asarray(x)
    if x.ndim == 0 or not split:
      return jax.make_array_from_process_local_data(rep, x, x.shape)
    start, stop = local_rows(x.shape[0], mesh)
    return jax.make_array_from_process_local_data(sharded, x[start:stop], x.shape)

  return jax.tree.map(put, batch)


def allgather_json(obj) -> list:
  """Every process's ``obj`` (JSON data), in process order, on every process."""
  data = json.dumps(obj, sort_keys=True).encode()
  if jax.process_count() == 1:
    return [json.loads(data)]
  sizes = multihost_utils.process_allgather(np.array([len(data)], np.int32)).reshape(-1)
  buf = np.zeros(int(sizes.max()), np.uint8)
  buf[:len(data)] = np.frombuffer(data, np.uint8)
  rows = multihost_utils.process_allgather(buf).reshape(len(sizes), -1)
  return [json.loads(bytes(rows[i, :sizes[i]])) for i in range(len(sizes))]


def check_same_config(config_dict: dict, diff: Callable[[dict, dict], list[str]]) -> None:
  """Fails on every process, naming the fields, unless all processes run the same config.

  Across processes it also checks, at the same point on every process, that
  ``batch_size`` divides over all their devices (``make_mesh`` checks it
  again): an error that every process finds is best found by all at once.
  """
  configs = allgather_json(config_dict)
  differ = {p: fields for p, c in enumerate(configs) if (fields := diff(configs[0], c))}
  if differ:
    details = "; ".join(
        f"process {p}: " + ", ".join(f"{k} = {_get(configs[p], k)!r} (process 0: "
                                     f"{_get(configs[0], k)!r})" for k in fields)
        for p, fields in differ.items())
    raise ValueError(f"config: the processes were started with different configs ({details}); "
                     "every process must get the same --config and overrides")
  batch_size = config_dict.get("batch_size")
  if jax.process_count() > 1 and isinstance(batch_size, int) and batch_size % jax.device_count():
    raise ValueError(f"batch_size: {batch_size} does not divide over {jax.process_count()} processes x "
                     f"{jax.local_device_count()} device(s) = {jax.device_count()} devices; make it a "
                     f"multiple of {jax.device_count()}")


def _get(d: dict, dotted: str):
  for k in dotted.split("."):
    if not isinstance(d, dict) or k not in d:
      return "<absent>"
    d = d[k]
  return d


def run_on_main(fn: Callable[[], Any], what: str):
  """Runs ``fn`` on process 0 only and returns its (JSON) result on every process.

  If it raises, process 0 re-raises its error and every other process raises
  a RuntimeError quoting it, at the same point: the run stops at once
  instead of leaving the others blocked in the next collective.
  """
  if jax.process_count() == 1:
    return fn()
  result, error, exc = None, "", None
  if is_main():
    try:
      result = fn()
    except Exception as e:  # re-raised below, once every process knows
      error, exc = f"{type(e).__name__}: {e}", e
  shared = allgather_json({"result": result, "error": error} if is_main() else None)[0]
  if exc is not None:
    raise exc
  if shared["error"]:
    raise RuntimeError(f"process 0 failed {what}: {shared['error']}")
  return shared["result"]


def host_local(tree):
  """A replicated global pytree as NumPy arrays on this host (for Python-side reports)."""
  if jax.process_count() == 1:
    return tree
  return jax.tree.map(np.asarray, tree)


class NullWriter:
  """What processes other than 0 write metrics to: nothing."""

  def write(self, step: int, split: str, scalars: dict) -> None:
    del step, split, scalars

  def close(self) -> None:
    pass
