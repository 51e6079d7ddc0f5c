"""Unrolling cells over sequences with ``jax.lax.scan``: masking, reverse, bidirectional, stacks.

Shape legend: B batch, T time, D input size, H hidden size, G gate width.
Sequences are batch-major, x_BTD in and y_BTH out. ``lengths`` [B] gives the
valid prefix of each sequence; positions t >= lengths[b] are padding.

Written once for every cell: the input projection runs over all steps before
the loop (one matmul), and only ``cell.step`` runs inside the scan body.
Masking is arithmetic (``jnp.where``), so one compiled program serves every
mix of lengths.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from recurrent import fused
from recurrent.cells import Cell, make_cell
from recurrent.cells.base import Array, check_positive_int

MERGES = ("concat", "sum")


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def check_sequence_args(cell: Cell, xs: Array, lengths: Array | None) -> None:
  """Fails early, naming the argument, on a bad shape or out-of-range lengths."""
  if xs.ndim != 3:
    raise ValueError(f"xs: expected a batch-major [B, T, D] array, got shape {tuple(xs.shape)}")
  if xs.shape[-1] != cell.input_size:
    raise ValueError(
        f"xs: last axis must be input_size={cell.input_size}, got shape {tuple(xs.shape)}")
  if lengths is None:
    return
  lengths = jnp.asarray(lengths)
  if lengths.shape != (xs.shape[0],):
    raise ValueError(
        f"lengths: expected shape [B]=({xs.shape[0]},), got {tuple(lengths.shape)}")
  if not jnp.issubdtype(lengths.dtype, jnp.integer):
    raise ValueError(f"lengths: expected integers, got dtype {lengths.dtype}")
  if _is_concrete(lengths) and lengths.size:
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 0:
      raise ValueError(f"lengths: must be >= 0, got a length of {lo}")
    if hi > xs.shape[1]:
      raise ValueError(
          f"lengths: must be <= the time axis T={xs.shape[1]}, got a length of {hi}")


def time_mask(lengths: Array, num_steps: int) -> Array:
  """[B, T] bool, True at valid positions t < lengths[b]."""
  return jnp.arange(num_steps)[None, :] < jnp.asarray(lengths)[:, None]


def reverse_padded(xs: Array, lengths: Array | None) -> Array:
  """Reverses each sequence within its valid prefix; padding stays where it is.

  [B, T, ...] -> [B, T, ...] with out[b, t] = xs[b, L_b - 1 - t] for t < L_b
  and xs[b, t] otherwise. It is its own inverse.
  """
  if lengths is None:
    return jnp.flip(xs, axis=1)
  T = xs.shape[1]
  t = jnp.arange(T)[None, :]
  L = jnp.asarray(lengths)[:, None]
  idx = jnp.where(t < L, L - 1 - t, t)  # [B, T]
  idx = idx.reshape(idx.shape + (1,) * (xs.ndim - 2))
  return jnp.take_along_axis(xs, idx, axis=1)


IMPLS = ("scan", "fused", "associative", "auto")


def _step_scan(cell: Cell, params: dict, xp_TBG: Array, mask_TB: Array | None, carry,
               unroll: int):
  """The reference recurrence: ``cell.step`` under ``lax.scan``, masked arithmetically."""
  if mask_TB is None:
    def body(carry, xp_BG):
      return cell.step(params, carry, xp_BG)
    return jax.lax.scan(body, carry, xp_TBG, unroll=unroll)

  def masked_body(carry, inputs):
    xp_BG, m_B = inputs
    new_carry, y_BH = cell.step(params, carry, xp_BG)
    m_B1 = m_B[:, None]
    new_carry = jax.tree.map(lambda new, old: jnp.where(m_B1, new, old), new_carry, carry)
    return new_carry, jnp.where(m_B1, y_BH, jnp.zeros_like(y_BH))

  return jax.lax.scan(masked_body, carry, (xp_TBG, mask_TB), unroll=unroll)


def _recurrence(cell: Cell, params: dict, x_TBD: Array, mask_TB: Array | None, carry,
                unroll: int, impl: str):
  """Projects the inputs (one matmul for all steps) and runs the chosen recurrence."""
  xp_TBG = cell.project_inputs(params, x_TBD)
  parallel = getattr(cell, "parallel_scan", None)
  if impl == "auto" and parallel is not None and jax.default_backend() == "cpu":
    impl = "fused"  # a CPU has no parallel lanes for the O(T log T) scan (docs/PERFORMANCE.md)
  if impl == "associative" or (impl == "auto" and parallel is not None):
    if parallel is None:
      raise ValueError(f"impl: 'associative' needs a cell with a parallel form, got {cell!r}")
    return parallel(params, xp_TBG, mask_TB, carry)
  if impl == "fused" or (impl == "auto" and fused.supports(cell)):
    return fused.recurrence(cell, params, xp_TBG, mask_TB, carry, unroll)
  return _step_scan(cell, params, xp_TBG, mask_TB, carry, unroll)


def _chunked(cell: Cell, params: dict, x_TBD: Array, mask_TB: Array | None, carry,
             unroll: int, impl: str, chunk: int):
  """Rematerialisation: an outer scan over chunks of ``chunk`` steps, each under jax.checkpoint.

  The backward pass keeps only the carries at chunk boundaries and recomputes
  one chunk at a time (input projection included), so the memory of the
  saved activations falls from O(T) to O(T / chunk + chunk) at the price of
  one more forward pass. T is padded to a multiple of ``chunk`` with masked
  steps, which leave the carry unchanged.
  """
  T, B = x_TBD.shape[:2]
  n = -(-T // chunk)
  pad = n * chunk - T
  if pad:
    if mask_TB is None:
      mask_TB = jnp.ones((T, B), bool)
    x_TBD = jnp.pad(x_TBD, ((0, pad), (0, 0), (0, 0)))
    mask_TB = jnp.pad(mask_TB, ((0, pad), (0, 0)))
  x_NCBD = x_TBD.reshape(n, chunk, *x_TBD.shape[1:])
  mask_NCB = None if mask_TB is None else mask_TB.reshape(n, chunk, B)

  @jax.checkpoint
  def run_chunk(carry, inputs):
    x_CBD, m_CB = inputs
    return _recurrence(cell, params, x_CBD, m_CB, carry, unroll, impl)

  carry, ys_NCBH = jax.lax.scan(run_chunk, carry, (x_NCBD, mask_NCB))
  ys_TBH = ys_NCBH.reshape(n * chunk, *ys_NCBH.shape[2:])
  return carry, ys_TBH[:T]


def unroll(cell: Cell, params: dict, xs: Array, lengths: Array | None = None,
           initial_carry: Any = None, reverse: bool = False, unroll: int = 1, *,
           impl: str = "auto", remat: int = 0):
  """Runs ``cell`` over a batch of sequences.

  Args:
    cell: the cell.
    params: its parameters (``cell.init(key)``).
    xs: [B, T, D] inputs.
    lengths: optional [B] ints in [0, T]. A sequence's carry stops changing
      after its last valid step, its outputs there are zero, and its final
      carry is the carry at its last valid step (the initial carry if its
      length is 0).
    initial_carry: the carry at t = 0 (default zeros, ``cell.initial_carry``).
    reverse: run each sequence backward from its own last valid step; the
      outputs stay aligned with the inputs (y[b, t] is the state after
      reading x[b, t], ..., x[b, L_b - 1]).
    unroll: steps per scan iteration (``jax.lax.scan``'s ``unroll``).
    impl: the recurrence. "scan" (the reference): ``cell.step`` under
      ``lax.scan``, differentiated by JAX. "fused": the hand-written backward
      pass of ``recurrent.fused`` (LSTM without peepholes, GRU reset_after,
      Elman: the recurrent weight gradient leaves the loop; minGRU, minLSTM:
      a sequential linear recurrence whose backward pass is the same
      recurrence backward in time). "associative": the parallel scan of
      cells that have one (minGRU, minLSTM: ``cell.parallel_scan``). "auto":
      for minGRU/minLSTM "associative" on accelerators and "fused" on a CPU
      (no parallel lanes there for the scan's O(T log T) work); for the
      others "fused" where supported, else "scan".
    remat: 0 (off) or k > 0: checkpoint chunks of k steps (``jax.checkpoint``),
      trading one extra forward pass for memory; about sqrt(T) is a good k.

  Returns:
    (final_carry, ys) with ys [B, T, H].
  """
  check_sequence_args(cell, xs, lengths)
  if impl not in IMPLS:
    raise ValueError(f"impl: must be one of {IMPLS}, got {impl!r}")
  if isinstance(remat, bool) or not isinstance(remat, int) or remat < 0:
    raise ValueError(f"remat: must be an int >= 0 (steps per checkpointed chunk), got {remat!r}")
  B, T, _ = xs.shape
  carry = cell.initial_carry((B,)) if initial_carry is None else initial_carry
  if reverse:
    xs = reverse_padded(xs, lengths)          # per position, so before or after projecting
  x_TBD = jnp.swapaxes(xs, 0, 1)
  mask_TB = None if lengths is None else jnp.swapaxes(time_mask(lengths, T), 0, 1)
  if remat:
    carry, ys_TBH = _chunked(cell, params, x_TBD, mask_TB, carry, unroll, impl, remat)
  else:
    carry, ys_TBH = _recurrence(cell, params, x_TBD, mask_TB, carry, unroll, impl)
  ys = jnp.swapaxes(ys_TBH, 0, 1)
  if reverse:
    ys = reverse_padded(ys, lengths)
  return carry, ys


unroll_ = unroll  # inside functions below, the name `unroll` is the scan's argument


def merge_directions(y_fw: Array, y_bw: Array, merge: str) -> Array:
  """Joins forward and backward outputs: 'concat' -> [.., 2H], 'sum' -> [.., H]."""
  if merge == "concat":
    return jnp.concatenate([y_fw, y_bw], axis=-1)
  if merge == "sum":
    return y_fw + y_bw
  raise ValueError(f"merge: must be one of {MERGES}, got {merge!r}")


def bidirectional(cell_fw: Cell, cell_bw: Cell, params: dict, xs: Array,
                  lengths: Array | None = None, initial_carry: tuple | None = None,
                  merge: str = "concat", unroll: int = 1, *, impl: str = "auto",
                  remat: int = 0):
  """A forward and a backward pass with separate weights, merged.

  ``params`` is {"fw": ..., "bw": ...}. Returns ((carry_fw, carry_bw), ys):
  ys [B, T, 2H] for ``merge='concat'`` (forward first) or [B, T, H] for 'sum'.
  ``impl`` and ``remat`` as in ``unroll``.
  """
  if merge not in MERGES:
    raise ValueError(f"merge: must be one of {MERGES}, got {merge!r}")
  c_fw, c_bw = (None, None) if initial_carry is None else initial_carry
  carry_fw, y_fw = unroll_(cell_fw, params["fw"], xs, lengths, c_fw, False, unroll,
                           impl=impl, remat=remat)
  carry_bw, y_bw = unroll_(cell_bw, params["bw"], xs, lengths, c_bw, True, unroll,
                           impl=impl, remat=remat)
  return (carry_fw, carry_bw), merge_directions(y_fw, y_bw, merge)



@dataclasses.dataclass(frozen=True)
class Layer:
  """One recurrent layer: a cell, optionally run in both directions (separate weights)."""

  cell: Cell
  is_bidirectional: bool = False
  merge: str = "concat"

  def __post_init__(self):
    if self.merge not in MERGES:
      raise ValueError(f"merge: must be one of {MERGES}, got {self.merge!r}")

  @property
  def output_size(self) -> int:
    H = self.cell.hidden_size
    return 2 * H if self.is_bidirectional and self.merge == "concat" else H

  def init(self, key: Array) -> dict:
    if not self.is_bidirectional:
      return self.cell.init(key)
    k_fw, k_bw = jax.random.split(key)
    return {"fw": self.cell.init(k_fw), "bw": self.cell.init(k_bw)}

  def apply(self, params: dict, xs: Array, lengths: Array | None = None,
            initial_carry: Any = None, unroll: int = 1, *, impl: str = "auto",
            remat: int = 0):
    """(final_carry, ys); a bidirectional layer's carry is (forward, backward)."""
    if self.is_bidirectional:
      return bidirectional(self.cell, self.cell, params, xs, lengths, initial_carry,
                           self.merge, unroll, impl=impl, remat=remat)
    return unroll_(self.cell, params, xs, lengths, initial_carry, False, unroll, impl=impl,
                   remat=remat)


@dataclasses.dataclass(frozen=True)
class Stack:
  """Layers applied in turn, with dropout between them and optional residual connections.

  Dropout (inverted, rate ``dropout``) is applied to the output of every
  layer but the last, when an rng is given. With ``residual=True`` a layer's
  input is added to its output wherever their sizes match (He et al. 2016;
  Wu et al. 2016 for stacked LSTMs).
  """

  layers: tuple[Layer, ...]
  dropout: float = 0.0
  residual: bool = False

  def __post_init__(self):
    if not self.layers:
      raise ValueError("layers: a stack needs at least one layer, got none")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")
    for i in range(1, len(self.layers)):
      want, got = self.layers[i - 1].output_size, self.layers[i].cell.input_size
      if want != got:
        raise ValueError(
            f"layers[{i}]: input_size must equal the previous layer's output size {want}, "
            f"got {got}")

  @property
  def input_size(self) -> int:
    return self.layers[0].cell.input_size

  @property
  def output_size(self) -> int:
    return self.layers[-1].output_size

  def init(self, key: Array) -> list:
    keys = jax.random.split(key, len(self.layers))
    return [layer.init(k) for layer, k in zip(self.layers, keys)]

  def apply(self, params: list, xs: Array, lengths: Array | None = None,
            initial_carries: Sequence | None = None, rng: Array | None = None,
            unroll: int = 1, *, impl: str = "auto", remat: int = 0):
    """Returns (final carries, one per layer, ys of the last layer [B, T, out]).

    ``rng`` switches dropout on (training); without it the stack is deterministic.
    ``impl`` and ``remat`` as in ``unroll``.
    Outputs at padded positions are zero.
    """
    if initial_carries is None:
      initial_carries = [None] * len(self.layers)
    if len(initial_carries) != len(self.layers):
      raise ValueError(
          f"initial_carries: expected {len(self.layers)} carries, got {len(initial_carries)}")
    carries = []
    h = xs
    for i, (layer, p, c0) in enumerate(zip(self.layers, params, initial_carries)):
      carry, y = layer.apply(p, h, lengths, c0, unroll, impl=impl, remat=remat)
      if self.residual and y.shape[-1] == h.shape[-1]:
        y = y + h
        if lengths is not None:
          y = jnp.where(time_mask(lengths, y.shape[1])[..., None], y, 0.0)
      if rng is not None and self.dropout > 0.0 and i < len(self.layers) - 1:
        keep = jax.random.bernoulli(jax.random.fold_in(rng, i), 1.0 - self.dropout, y.shape)
        y = jnp.where(keep, y / (1.0 - self.dropout), 0.0)
      carries.append(carry)
      h = y
    return carries, h


def make_stack(cell: str, input_size: int, hidden_sizes: int | Sequence[int],
               bidirectional: bool = False, merge: str = "concat", dropout: float = 0.0,
               residual: bool = False, **cell_kwargs) -> Stack:
  """Builds a stack of named cells; ``hidden_sizes`` gives one size per layer."""
  if isinstance(hidden_sizes, int):
    hidden_sizes = (hidden_sizes,)
  if len(hidden_sizes) == 0:
    raise ValueError("hidden_sizes: need at least one layer, got an empty list")
  layers = []
  d = input_size
  for i, h in enumerate(hidden_sizes):
    check_positive_int(f"hidden_sizes[{i}]", h)
    layer = Layer(make_cell(cell, d, h, **cell_kwargs), bidirectional, merge)
    layers.append(layer)
    d = layer.output_size
  return Stack(tuple(layers), dropout, residual)
