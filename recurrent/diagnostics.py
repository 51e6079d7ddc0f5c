"""Gradient diagnostics: how far back does the gradient of a recurrent model reach?

Shape legend: B batch, T time, D input, H hidden, K distance back from the
target step (K = 0 is the target step itself).

Backpropagation through time multiplies the gradient by one Jacobian per step
(seed 003, "vanishing gradient intuition"; Bengio et al. 1994; Pascanu et al.
2013):

    dL/dh_t = (dh_{t+1}/dh_t)^T dL/dh_{t+1} + (direct terms at t)
    dh_T/dh_t = J_T J_{T-1} ... J_{t+1},      J_s = dh_s/dh_{s-1}

and for the tanh RNN h_s = tanh(x_s W_x + h_{s-1} W_h + b), J_s =
diag(1 - h_s^2) W_h^T, so the product shrinks roughly like sigma^k when the
singular values sigma of W_h (times tanh') are below 1 and grows when they are
above (seed 004: 0.9^50 = 0.005, 1.1^50 = 117.4).

We get dL/dh_t for every t in one backward pass with the zero-perturbation
trick: the scan adds delta_t (zeros) to the carry after step t, so
dL/d(delta_t) = dL/dh_t, the total derivative through every later step. The
scan here is our own (``cell.project_inputs`` before the loop, ``cell.step``
inside, as in ``recurrent.layers.unroll``) because the per-step hook must sit
inside the loop body.

A Flax model built on ``recurrent.nn.RNN`` (the models in
``recurrent/models.py``) is diagnosed unchanged: ``perturbed_apply`` intercepts
the RNN module's call (``flax.linen.intercept_methods``) and runs the same
stack, with the same parameters, through the perturbed scan. A Flax NNX model
built on ``recurrent.nnx.RNN`` is diagnosed the same way (``recurrent.nnx.intercept``);
pass ``variables=None`` for it, as the NNX model holds its own parameters.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple

import flax.linen as nn
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from recurrent.cells.base import Cell
from recurrent.checks import check_int
from recurrent.layers import Stack
from recurrent import nnx as rnnx
from recurrent.nn import RNN

Array = jax.Array
PARTS = ("hidden", "carry")


# ----------------------------------------------------------------------------- the perturbed scan

def unroll_with_deltas(cell: Cell, params: dict, x_BTD: Array, delta, initial_carry=None):
  """Unrolls ``cell`` adding ``delta`` to the carry after every step.

  Args:
    cell: any cell; its output y_t must be ``cell.hidden(carry_t)`` (true of
      every cell in ``recurrent.cells``).
    params: the cell's parameters.
    x_BTD: inputs [B, T, D] (full-length sequences: no padding).
    delta: a pytree shaped like the carry with a time axis, leaves [B, T, H].
    initial_carry: the carry before step 0 (default zeros).

  Returns:
    (final carry, ys [B, T, H], carries: the carry pytree with leaves [B, T, H]).
  """
  B = x_BTD.shape[0]
  carry = cell.initial_carry((B,)) if initial_carry is None else initial_carry
  xp_TBG = jnp.swapaxes(cell.project_inputs(params, x_BTD), 0, 1)
  delta_T = jax.tree.map(lambda d: jnp.swapaxes(d, 0, 1), delta)

  def body(carry, inputs):
    xp_BG, d = inputs
    carry, _ = cell.step(params, carry, xp_BG)
    carry = jax.tree.map(jnp.add, carry, d)
    return carry, carry

  carry, carries_T = jax.lax.scan(body, carry, (xp_TBG, delta_T))
  carries = jax.tree.map(lambda c: jnp.swapaxes(c, 0, 1), carries_T)
  return carry, cell.hidden(carries), carries


def zero_deltas(stack: Stack, batch_size: int, num_steps: int) -> list:
  """Zeros shaped like each layer's carry with a time axis: a list of pytrees, leaves [B, T, H]."""
  check_int("batch_size", batch_size)
  check_int("num_steps", num_steps)
  out = []
  for i, layer in enumerate(stack.layers):
    if layer.is_bidirectional:
      raise ValueError(f"stack.layers[{i}]: gradient diagnostics need unidirectional layers, "
                       "got a bidirectional one")
    carry = layer.cell.initial_carry((batch_size,))
    out.append(jax.tree.map(lambda c: jnp.zeros((batch_size, num_steps) + c.shape[1:], c.dtype),
                            carry))
  return out


def stack_apply_with_deltas(stack: Stack, params, x_BTD: Array, deltas: list,
                            initial_carries=None):
  """``Stack.apply`` without padding or dropout, with a perturbation per layer and step.

  One scan over time of ``Stack.step(..., deltas=delta_t)``, so the layers and
  the connection between them are the stack's own. Returns (final carries,
  ys of the last layer [B, T, out], per-layer carry trajectories: a list of
  pytrees with leaves [B, T, H]).
  """
  if len(deltas) != len(stack.layers):
    raise ValueError(f"deltas: expected one per layer ({len(stack.layers)}), got {len(deltas)}")
  for i, layer in enumerate(stack.layers):
    if layer.is_bidirectional:
      raise ValueError(f"stack.layers[{i}]: gradient diagnostics need unidirectional layers, "
                       "got a bidirectional one")
  B = x_BTD.shape[0]
  carries = stack.initial_carries((B,))
  if initial_carries is not None:
    carries = [c if c0 is None else c0 for c, c0 in zip(carries, initial_carries)]
  time_major = lambda a: jnp.swapaxes(a, 0, 1)

  def body(carries, inputs):
    x_BD, delta = inputs
    carries, y_BH = stack.step(params, carries, x_BD, deltas=delta)
    return carries, (y_BH, carries)

  finals, (ys_TBH, trajectories) = jax.lax.scan(
      body, carries, (time_major(x_BTD), jax.tree.map(time_major, deltas)))
  return finals, time_major(ys_TBH), jax.tree.map(time_major, trajectories)


# ----------------------------------------------------------------------------- Flax models

class Trace(NamedTuple):
  """What the intercepted RNN saw: its stack, its inputs [B, T, D] and each layer's carries."""

  stack: Stack
  x_BTD: Array
  trajectories: list


_RNN_SIGNATURE = inspect.signature(RNN.__call__)


def perturbed_apply(model: nn.Module, variables, *args, deltas=None, **kwargs):
  """``model.apply(variables, *args, **kwargs)`` with the RNN inside run through the perturbed scan.

  ``deltas`` (default zeros) is the per-layer perturbation of
  ``zero_deltas``; the model must call one ``recurrent.nn.RNN`` once, without
  padding lengths. Returns (the model's outputs, Trace).
  """
  traces = []
  if isinstance(model, nnx.Module):
    return _perturbed_nnx(model, variables, args, kwargs, deltas)

  def interceptor(next_fun, call_args, call_kwargs, context):
    module = context.module
    if not isinstance(module, RNN) or context.method_name != "__call__":
      return next_fun(*call_args, **call_kwargs)
    bound = _RNN_SIGNATURE.bind(module, *call_args, **call_kwargs)
    bound.apply_defaults()
    xs, lengths = bound.arguments["xs"], bound.arguments["lengths"]
    if lengths is not None:
      raise ValueError("lengths: gradient diagnostics need full-length sequences, got lengths")
    stack = module.stack(xs.shape[-1])
    params = module.get_variable("params", "stack")
    d = zero_deltas(stack, xs.shape[0], xs.shape[1]) if deltas is None else deltas
    finals, ys, trajectories = stack_apply_with_deltas(
        stack, params, xs, d, bound.arguments["initial_carries"])
    traces.append(Trace(stack, xs, trajectories))
    return finals, ys

  with nn.intercept_methods(interceptor):
    outputs = model.apply(variables, *args, **kwargs)
  if len(traces) != 1:
    raise ValueError(f"model: expected exactly one call of recurrent.nn.RNN, got {len(traces)}")
  return outputs, traces[0]


def _perturbed_nnx(model: nnx.Module, variables, args, kwargs, deltas):
  """``perturbed_apply`` for a Flax NNX model calling one ``recurrent.nnx.RNN`` (``variables`` must be None)."""
  if variables is not None:
    raise ValueError("variables: an NNX model holds its own parameters; pass None")
  traces = []

  def run(module: rnnx.RNN, xs, lengths, initial_carries):
    if lengths is not None:
      raise ValueError("lengths: gradient diagnostics need full-length sequences, got lengths")
    d = zero_deltas(module.stack, xs.shape[0], xs.shape[1]) if deltas is None else deltas
    finals, ys, trajectories = stack_apply_with_deltas(module.stack, module.pure_params(), xs, d,
                                                       initial_carries)
    traces.append(Trace(module.stack, xs, trajectories))
    return finals, ys

  with rnnx.intercept(run):
    outputs = model(*args, **kwargs)
  if len(traces) != 1:
    raise ValueError(f"model: expected exactly one call of recurrent.nnx.RNN, got {len(traces)}")
  return outputs, traces[0]


def probe(model: nn.Module, variables, *args, **kwargs) -> tuple[Stack, list]:
  """(the model's stack, the zero perturbations ``perturbed_apply`` expects), found by tracing."""
  stacks = []

  def trajectories():
    _, trace = perturbed_apply(model, variables, *args, **kwargs)
    stacks.append(trace.stack)
    return trace.trajectories

  shapes = jax.eval_shape(trajectories)
  return stacks[0], jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _check_index(name: str, i, n: int, what: str) -> None:
  check_int(name, i, -n, below=n, note=what)


def _check_layer_part(stack: Stack, layer, part: str) -> None:
  _check_index("layer", layer, len(stack.layers), f"the model has {len(stack.layers)} layers")
  if part not in PARTS:
    raise ValueError(f"part: must be one of {PARTS}, got {part!r}")


def _part(cell: Cell, carry_tree, part: str) -> Array:
  """The hidden state h [.., H], or every leaf of the carry joined [.., n * H]."""
  if part == "hidden":
    return cell.hidden(carry_tree)
  if part == "carry":
    return jnp.concatenate(jax.tree.leaves(carry_tree), axis=-1)
  raise ValueError(f"part: must be one of {PARTS}, got {part!r}")


def hidden_gradients(model: nn.Module, variables, args: tuple,
                     loss_fn: Callable[[Any], Array], layer: int = -1, part: str = "hidden",
                     **kwargs) -> Array:
  """dL/dh_t for every t: [B, T, H] (``part='carry'``: the whole carry, e.g. (h, c) of an LSTM).

  ``loss_fn(outputs) -> scalar`` is the loss L of the model's outputs; use
  the loss at the last step (or any chosen step) to measure how far back it
  reaches. ``layer`` picks the layer of a stack.
  """
  stack, deltas = probe(model, variables, *args, **kwargs)
  _check_layer_part(stack, layer, part)

  def loss_of_deltas(deltas):
    outputs, _ = perturbed_apply(model, variables, *args, deltas=deltas, **kwargs)
    return loss_fn(outputs)

  grads = jax.grad(loss_of_deltas)(deltas)
  return _part(stack.layers[layer].cell, grads[layer], part)


def jacobian_norms(model: nn.Module, variables, args: tuple, layer: int = -1, target: int = -1,
                   part: str = "hidden", ord: Any = 2, **kwargs) -> Array:
  """||dh_target/dh_t|| for every t <= target: [B, T] (zeros after the target step).

  The Jacobian of one example's state at step ``target`` (of layer ``layer``)
  with respect to its own state at step t, as a matrix [H, H], measured with
  ``ord`` (2: the spectral norm, the largest singular value of the product
  J_target ... J_{t+1}; 'fro': Frobenius). At t = target it is the identity.
  """
  stack, deltas = probe(model, variables, *args, **kwargs)
  _check_layer_part(stack, layer, part)
  T = jax.tree.leaves(deltas[layer])[0].shape[1]
  _check_index("target", target, T, f"the sequences have T={T} steps")
  cell = stack.layers[layer].cell

  def state_at_target(deltas):
    _, trace = perturbed_apply(model, variables, *args, deltas=deltas, **kwargs)
    s_BTH = _part(cell, trace.trajectories[layer], part)
    return s_BTH[:, target]                                           # [B, H]

  # Examples are independent, so the Jacobian of the batch's sum over b of
  # output unit i gives every example's row i at once.
  out_BH, vjp = jax.vjp(state_at_target, deltas)
  H = out_BH.shape[-1]
  rows = jax.vmap(lambda e_H: vjp(jnp.broadcast_to(e_H[None, :], out_BH.shape))[0])(jnp.eye(H))
  rows_IBTH = _part(cell, rows[layer], part)                          # [H_out, B, T, H_in]
  jac_BTIJ = jnp.transpose(rows_IBTH, (1, 2, 0, 3))
  return jnp.linalg.norm(jac_BTIJ, ord=ord, axis=(-2, -1))


# ----------------------------------------------------------------------------- reading the curves

def by_distance(norms_BT: Array, target: int = -1) -> np.ndarray:
  """Mean over the batch of per-example norms, indexed by distance k back from ``target``: [K].

  Entry k is the norm at step target - k, for k = 0 .. target.
  """
  norms = np.asarray(norms_BT, dtype=np.float64)
  if norms.ndim != 2 or not norms.shape[1]:
    raise ValueError(f"norms_BT: expected shape [B, T] with T >= 1, got {norms.shape}")
  T = norms.shape[-1]
  _check_index("target", target, T, f"norms_BT has T={T} steps")
  target = target % T
  profile = norms[..., :target + 1].mean(axis=0)
  return profile[::-1].copy()


def effective_horizon(profile_K, factor: float = 1000.0) -> float:
  """The first distance k at which ``profile_K[k] <= profile_K[0] / factor``.

  ``profile_K`` is a gradient norm by distance (``by_distance``). Returns
  ``inf`` when the norm never falls that far within the measured range (the
  horizon is longer than the sequence), 0 for a zero gradient and NaN when
  the gradient at k = 0 is not finite (a diverged model).
  """
  if not factor > 1:
    raise ValueError(f"factor: must be > 1, got {factor!r}")
  p = np.asarray(profile_K, dtype=np.float64)
  if p.ndim != 1 or p.size == 0:
    raise ValueError(f"profile_K: expected a non-empty 1-d array, got shape {p.shape}")
  if not np.isfinite(p[0]):
    return float("nan")
  if not p[0] > 0:
    return 0.0
  below = np.nonzero(~(p > p[0] / factor))[0]     # NaN counts as fallen
  return float(below[0]) if below.size else float("inf")


# ----------------------------------------------------------------------------- recurrent matrices

def _recurrent_blocks(w_h: Array) -> Array:
  """W_h [H, n H] -> its gate blocks [n, H, H] (gate order as in each cell's docstring)."""
  H, G = w_h.shape
  if G % H:
    raise ValueError(f"W_h: expected shape [H, n * H], got {tuple(w_h.shape)}")
  return jnp.stack(jnp.split(w_h, G // H, axis=-1))


def recurrent_singular_values(params) -> dict[str, Array]:
  """Singular values of every recurrent matrix in a parameter pytree, per gate block.

  Returns {path: [n_gates, H]} (descending) for every leaf named ``W_h``.
  """
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    if path and getattr(path[-1], "key", None) == "W_h":
      out[jax.tree_util.keystr(path)] = jnp.linalg.svd(_recurrent_blocks(leaf), compute_uv=False)
  return out


def scale_recurrent(params, max_singular_value: float):
  """Rescales every gate block of every ``W_h`` so that its largest singular value is the one given.

  sigma_max > 1 puts a tanh RNN in the exploding regime near h = 0 (where
  tanh' = 1): ||dh_T/dh_t|| can grow like sigma_max^(T - t).
  """
  if not max_singular_value > 0:
    raise ValueError(f"max_singular_value: must be > 0, got {max_singular_value!r}")

  def scale(path, leaf):
    if not (path and getattr(path[-1], "key", None) == "W_h"):
      return leaf
    blocks = _recurrent_blocks(leaf)
    top = jnp.linalg.svd(blocks, compute_uv=False)[:, :1, None]       # [n, 1, 1]
    blocks = blocks * (max_singular_value / top)
    return jnp.concatenate(list(blocks), axis=-1).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(scale, params)
