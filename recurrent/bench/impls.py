"""One training step (forward, backward, Adam update) per implementation, built the same way.

Shape legend: B batch, T time, D input size, H hidden size.

Every implementation trains the same problem: a one-layer recurrent network
read as y_BTH, loss = mean((y - target)^2), Adam with learning rate 1e-3,
on the same x_BTD and target_BTH. ``build(impl, cell, B, T, D, H)`` returns a
``Runner`` whose ``step()`` runs one full training step and waits for it.

Implementations:
  ours            recurrent.layers.unroll as it runs by default (impl="auto": the
                  engine (recurrent.engine) for every cell, the associative scan
                  for minGRU/minLSTM)
  ours_scan       unroll(impl="scan"): cell.step under lax.scan, differentiated
                  by JAX (the reference path, and the "before" of every change)
  ours_remat      unroll(remat=k): checkpointed chunks of k steps
  flax            flax.linen.RNN with LSTMCell / GRUCell / SimpleCell
  flax_opt        flax.linen.RNN with OptimizedLSTMCell (LSTM only)
  torch           torch.nn.LSTM / GRU / RNN (CPU here)

Peak memory: for JAX, the compiled step's own memory analysis (temporaries +
arguments + outputs - donated aliases), an exact count of the buffers XLA
allocates for one step. For PyTorch, the largest total of live tensor bytes
during one step, from ``torch.profiler``'s memory timeline (allocator
overhead and the Python heap are not counted).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

LEARNING_RATE = 1e-3
JAX_CELLS = {"lstm": "lstm", "gru": "gru", "elman": "rnn_tanh", "min_gru": "min_gru",
             "min_lstm": "min_lstm"}


@dataclasses.dataclass
class Runner:
  """``step()`` runs one training step to completion; ``peak_bytes`` as the module docstring says."""

  step: Callable[[], None]
  peak_bytes: int
  loss: Callable[[], float]


def problem(B: int, T: int, D: int, H: int, seed: int = 0):
  """(x_BTD, target_BTH) as float32 NumPy arrays, the same for every implementation."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((B, T, D), dtype=np.float32)
  target = rng.standard_normal((B, T, H), dtype=np.float32) * 0.1
  return x, target


def jax_runner(apply_fn: Callable, params, x, target) -> Runner:
  """Jits loss + grad + Adam as one donated step and measures its buffers."""
  opt = optax.adam(LEARNING_RATE)

  def loss_fn(p, x_BTD, t_BTH):
    y_BTH = apply_fn(p, x_BTD)
    return jnp.mean(jnp.square(y_BTH.astype(jnp.float32) - t_BTH))

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def train_step(p, s, x_BTD, t_BTH):
    loss, g = jax.value_and_grad(loss_fn)(p, x_BTD, t_BTH)
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s, loss

  x, target = jnp.asarray(x), jnp.asarray(target)
  params = jax.tree.map(jnp.array, params)  # a private copy: the step donates it
  state = {"p": params, "s": opt.init(params), "loss": jnp.zeros(())}
  compiled = train_step.lower(state["p"], state["s"], x, target).compile()
  m = compiled.memory_analysis()
  peak = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
          - m.alias_size_in_bytes)

  def step():
    state["p"], state["s"], state["loss"] = compiled(state["p"], state["s"], x, target)
    jax.block_until_ready(state["loss"])

  return Runner(step, int(peak), lambda: float(state["loss"]))


def ours(cell_name: str, B, T, D, H, seed=0, **unroll_kwargs) -> Runner:
  from recurrent import make_cell
  from recurrent.layers import unroll
  cell = make_cell(JAX_CELLS[cell_name], D, H)
  params = cell.init(jax.random.key(seed))
  x, target = problem(B, T, D, H, seed)
  apply_fn = lambda p, x_BTD: unroll(cell, p, x_BTD, **unroll_kwargs)[1]
  return jax_runner(apply_fn, params, x, target)


def flax_rnn(cell_name: str, B, T, D, H, seed=0, optimized=False) -> Runner:
  import flax.linen as nn
  cells = {"lstm": nn.OptimizedLSTMCell if optimized else nn.LSTMCell,
           "gru": nn.GRUCell, "elman": nn.SimpleCell}
  model = nn.RNN(cells[cell_name](features=H))
  x, target = problem(B, T, D, H, seed)
  params = model.init(jax.random.key(seed), jnp.asarray(x))
  return jax_runner(model.apply, params, x, target)


def torch_rnn(cell_name: str, B, T, D, H, seed=0) -> Runner:
  import torch
  torch.manual_seed(seed)
  modules = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "elman": torch.nn.RNN}
  model = modules[cell_name](D, H, batch_first=True)
  opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
  x, target = (torch.from_numpy(a) for a in problem(B, T, D, H, seed))
  last = {"loss": 0.0}

  def step():
    opt.zero_grad(set_to_none=True)
    y, _ = model(x)
    loss = torch.mean(torch.square(y - target))
    loss.backward()
    opt.step()
    last["loss"] = loss.detach()

  step()  # Adam's state exists from here on, as in the JAX step's arguments
  return Runner(step, torch_peak_bytes(step), lambda: float(last["loss"]))


def torch_peak_bytes(step: Callable[[], None]) -> int:
  """The largest total of live tensor bytes during ``step()``, from torch's memory profiler.

  Uses ``torch.profiler``'s memory timeline (parameters, gradients, optimiser
  state, inputs, activations and temporaries it sees during the step); -1 if
  this private API is unavailable in the installed torch.
  """
  import torch
  from torch.profiler import ProfilerActivity, profile
  try:
    from torch.profiler._memory_profiler import MemoryProfileTimeline
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
      step()
    _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(
        torch.device("cpu"))
    return int(max(sum(s) for s in sizes))
  except Exception:  # noqa: BLE001 -- a private API; the benchmark reports -1 instead
    return -1


GATES = {"lstm": 4, "gru": 3, "elman": 1}


def train_step_flops(cell_name: str, B: int, T: int, D: int, H: int) -> float:
  """Matmul FLOPs of one training step: 3 x the forward's 2 B T (D + H) G H (G gate blocks)."""
  return 3 * 2.0 * B * T * (D + H) * GATES[cell_name] * H


def gemm(cell_name: str, B: int, T: int, D: int, H: int) -> Runner:
  """One [B T, D + H] x [D + H, G H] matmul: the step's forward FLOPs at the core's matmul rate."""
  a = jnp.ones((B * T, D + H))
  b = jnp.ones((D + H, GATES[cell_name] * H))
  compiled = jax.jit(lambda a, b: a @ b).lower(a, b).compile()
  out = {}

  def step():
    out["y"] = jax.block_until_ready(compiled(a, b))

  return Runner(step, -1, lambda: float(out["y"][0, 0]))


def build(impl: str, cell_name: str, B: int, T: int, D: int, H: int, seed: int = 0,
          remat: int = 0, unroll: int = 1) -> Runner:
  """The runner of ``impl`` (see the module docstring) for one cell and size."""
  if impl == "ours":
    return ours(cell_name, B, T, D, H, seed, unroll=unroll)
  if impl == "ours_scan":
    return ours(cell_name, B, T, D, H, seed, unroll=unroll, impl="scan")
  if impl == "ours_remat":
    return ours(cell_name, B, T, D, H, seed, unroll=unroll, remat=remat)
  if impl == "flax":
    if cell_name.startswith("min_"):
      raise ValueError(f"impl: flax has no {cell_name}")
    return flax_rnn(cell_name, B, T, D, H, seed)
  if impl == "flax_opt":
    if cell_name != "lstm":
      raise ValueError(f"impl: flax_opt is flax's OptimizedLSTMCell, not {cell_name}")
    return flax_rnn(cell_name, B, T, D, H, seed, optimized=True)
  if impl == "torch":
    return torch_rnn(cell_name, B, T, D, H, seed)
  raise ValueError(f"impl: unknown implementation {impl!r}")
