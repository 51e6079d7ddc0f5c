"""Unrolling cells over sequences with ``jax.lax.scan``: masking, reverse, bidirectional, stacks.

Shape legend: B batch, T time, D input size, H hidden size, G gate width.
Sequences are batch-major, x_BTD in and y_BTH out. ``lengths`` [B] gives the
valid prefix of each sequence; positions t >= lengths[b] are padding.

Written once for every cell: the input projection runs over all steps before
the loop (one matmul), and only ``cell.step`` runs inside the scan body.
Masking is arithmetic (``jnp.where``), so one compiled program serves every
mix of lengths. Padded inputs are zeroed before the projection, so garbage
there (NaN and Inf included) changes neither values nor gradients.

A ``Stack`` runs its layers over whole sequences (``apply``) or one time step
at a time (``step``, for decoders, streaming and stateful inference); both use
the same rule between layers (``Stack.connect``: residual or highway, then
dropout).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from recurrent import engine
from recurrent.cells import Cell, make_cell
from recurrent.cells.base import Array, abstract, check_like
from recurrent.checks import check_int

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
  if _is_concrete(lengths) and lengths.size:  # NumPy: no staged ops when closed over inside jit
    lo, hi = int(np.min(np.asarray(lengths))), int(np.max(np.asarray(lengths)))
    if lo < 0:
      raise ValueError(f"lengths: must be >= 0, got a length of {lo}")
    if hi > xs.shape[1]:
      raise ValueError(
          f"lengths: must be <= the time axis T={xs.shape[1]}, got a length of {hi}")


def _sizes(cell: Cell) -> str:
  return f"{type(cell).__name__} with D={cell.input_size}, H={cell.hidden_size}"


def check_params(owner, params, name: str = "params") -> None:
  """Fails naming the entry unless ``params`` has the layout and shapes of ``owner.init(key)``.

  ``owner`` is a cell, a ``Layer`` or a ``Stack``; the message names the entry
  (``params[1]['W_h']``), the expected shape and the one received, and the
  sizes of the cell it belongs to. Static shapes only: free under ``jit``.
  """
  if isinstance(owner, Cell):
    note = f" ({_sizes(owner)})"
  else:
    layers_ = owner.layers if isinstance(owner, Stack) else (owner,)

    def note(path: str, shape) -> str:
      i = re.search(r"\[(\d+)\]", path)   # the layer's index in a stack's list
      i = int(i.group(1)) if i and len(layers_) > 1 else 0
      where = f"layer {i}: " if len(layers_) > 1 else ""
      return f" ({where}{_sizes(layers_[i].cell)})"
  check_like(name, params, abstract(owner), note)


def check_carry(cell: Cell, carry, batch_shape: tuple[int, ...], name: str) -> None:
  """Fails naming the entry unless ``carry`` has the shapes of ``cell.initial_carry(batch_shape)``.

  ``batch_shape`` is the inputs' (``(B,)`` for xs [B, T, D]): a carry of
  another batch fails here, as "initial_carry.h: expected shape (4, 8) =
  [B=4, H=8], got (2, 8)", not inside the scan.
  """
  batch_shape = tuple(batch_shape)
  H = cell.hidden_size

  def note(path: str, shape) -> str:
    if len(batch_shape) == 1 and shape == (*batch_shape, H):
      return f" = [B={batch_shape[0]}, H={H}] (B: the inputs' batch, H: the {type(cell).__name__}'s)"
    return f" (the inputs' batch shape {batch_shape}, then the {type(cell).__name__}'s carry)"
  check_like(name, carry, abstract(cell, "initial_carry", batch_shape), note)


def split_pair(carry, name: str) -> tuple:
  """A bidirectional layer's initial carry: a (forward, backward) pair, either one None (zeros)."""
  if isinstance(carry, (tuple, list)) and not hasattr(carry, "_fields") and len(carry) == 2:
    return tuple(carry)
  raise ValueError(f"{name}: a bidirectional layer takes a (forward, backward) pair of carries, "
                   f"got {type(carry).__name__}")


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


IMPLS = ("scan", "hoisted", "associative", "auto")
RENAMED_IMPLS = {"fused": "hoisted"}


def check_impl(impl: str) -> None:
  """Fails naming ``impl`` unless it is one of ``IMPLS`` (an old name says what it became)."""
  if impl in RENAMED_IMPLS:
    raise ValueError(f"impl: {impl!r} is now called {RENAMED_IMPLS[impl]!r} (a custom JVP that "
                     "takes the recurrent weight's gradient out of the backward loop, not a fused "
                     "kernel)")
  if impl not in IMPLS:
    raise ValueError(f"impl: must be one of {IMPLS}, got {impl!r}")


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
  if mask_TB is not None:  # padding never reaches the arithmetic, so NaN there cannot leak
    x_TBD = jnp.where(mask_TB[..., None], x_TBD, jnp.zeros((), x_TBD.dtype))
  xp_TBG = cell.project_inputs(params, x_TBD)
  parallel = getattr(cell, "parallel_scan", None)
  if impl == "auto":
    # A CPU has no parallel lanes for the associative scan's O(T log T) work (docs/PERFORMANCE.md).
    on_cpu = jax.default_backend() == "cpu"
    impl = "associative" if parallel is not None and not on_cpu else "hoisted"
  if impl == "associative":
    if parallel is None:
      raise ValueError(f"impl: 'associative' needs a cell with a parallel form, got {cell!r}")
    return parallel(params, xp_TBG, mask_TB, carry)
  if impl == "hoisted":
    return engine.recurrence(cell, params, xp_TBG, mask_TB, carry, unroll)
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
      length is 0). Concrete lengths out of range raise; traced lengths
      (under ``jit``) cannot be checked and are clipped to [0, T].
    initial_carry: the carry at t = 0 (default zeros, ``cell.initial_carry``).
    reverse: run each sequence backward from its own last valid step; the
      outputs stay aligned with the inputs (y[b, t] is the state after
      reading x[b, t], ..., x[b, L_b - 1]).
    unroll: steps per scan iteration (``jax.lax.scan``'s ``unroll``).
    impl: the recurrence. "scan" (the reference): ``cell.step`` under
      ``lax.scan``, differentiated by JAX. "hoisted": ``recurrent.engine``,
      the same step under a custom JVP rule that takes the recurrent
      weight's gradient out of the backward loop (one matmul after it), for
      every cell; forward-mode and higher derivatives work through it.
      "associative": the parallel scan of cells that have one (minGRU,
      minLSTM: ``cell.parallel_scan``; reverse mode only). "auto":
      "associative" for those cells on accelerators, else "hoisted" (a CPU
      has no parallel lanes for the associative scan's O(T log T) work).
    remat: 0 (off) or k > 0: checkpoint chunks of k steps (``jax.checkpoint``),
      trading one extra forward pass for memory; about sqrt(T) is a good k.

  Returns:
    (final_carry, ys) with ys [B, T, H].
  """
  check_sequence_args(cell, xs, lengths)
  check_impl(impl)
  check_int("remat", remat, 0, note="steps per checkpointed chunk")
  B, T, _ = xs.shape
  check_params(cell, params)
  if initial_carry is not None:
    check_carry(cell, initial_carry, (B,), "initial_carry")
  if lengths is not None:
    lengths = jnp.clip(jnp.asarray(lengths), 0, T)
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


FW = "['fw']"  # the forward direction's entry in a bidirectional layer's parameters


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
  check_sequence_args(cell_fw, xs, lengths)
  check_like("params", params, {"fw": abstract(cell_fw), "bw": abstract(cell_bw)},
             lambda path, _: f" ({_sizes(cell_fw if path.startswith(FW) else cell_bw)})")
  c_fw, c_bw = (None, None) if initial_carry is None else split_pair(initial_carry, "initial_carry")
  for i, (cell, c) in enumerate(((cell_fw, c_fw), (cell_bw, c_bw))):
    if c is not None:
      check_carry(cell, c, xs.shape[:1], f"initial_carry[{i}]")
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


HIGHWAY_BIAS = -2.0  # the transform gate starts mostly closed: a new highway layer is near the identity


@dataclasses.dataclass(frozen=True)
class Stack:
  """Layers applied in turn, with a connection rule between them.

  Between layer i's input x and its output y (``connect``, the one
  definition used by ``apply``, ``step`` and the gradient lab):

    residual (He et al. 2016; Wu et al. 2016):   y <- y + x
    highway (Srivastava et al. 2015):           y <- T * y + (1 - T) * x,
                                                T = sigma(x W_T + b_T)
    then dropout (inverted, rate ``dropout``) on every layer's output but the
    last, when an rng is given.

  Residual and highway apply where x and y have the same size (not to a
  layer that changes the width, such as the first one usually). The highway
  gate's bias starts at ``HIGHWAY_BIAS`` (-2) so the stack starts close to
  the identity through each highway layer, as the paper recommends.

  Parameters (``init``): a list with one entry per layer, the layer's own
  parameters; with ``highway=True`` a dict {"layers": that list, "highway":
  [{"W_T" [D, H], "b_T" [H]} or None per layer]}.

  How ``apply`` runs each layer's recurrence (``unroll``, ``impl``, ``remat``,
  as in ``recurrent.layers.unroll``) is part of the stack, so a model built
  from a config runs as the config says without passing them on; ``apply``'s
  own arguments override them for one call.
  """

  layers: tuple[Layer, ...]
  dropout: float = 0.0
  residual: bool = False
  highway: bool = False
  unroll: int = 1
  impl: str = "auto"
  remat: int = 0

  def __post_init__(self):
    if not self.layers:
      raise ValueError("layers: a stack needs at least one layer, got none")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")
    if self.residual and self.highway:
      raise ValueError("residual, highway: choose one connection between layers, got both")
    check_int("unroll", self.unroll)
    check_impl(self.impl)
    check_int("remat", self.remat, 0, note="steps per checkpointed chunk")
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

  def _skips(self, i: int) -> bool:
    """Whether layer i has a residual or highway connection (its input and output sizes match)."""
    layer = self.layers[i]
    return (self.residual or self.highway) and layer.cell.input_size == layer.output_size

  def init(self, key: Array):
    keys = jax.random.split(key, len(self.layers))
    layers = [layer.init(k) for layer, k in zip(self.layers, keys)]
    if not self.highway:
      return layers
    gates = []
    gate_keys = jax.random.split(jax.random.fold_in(key, len(self.layers)), len(self.layers))
    for i, (layer, k) in enumerate(zip(self.layers, gate_keys)):
      if not self._skips(i):
        gates.append(None)
        continue
      cell = layer.cell
      W = cell.kernel_init(k, (cell.input_size, layer.output_size), cell.param_dtype)
      gates.append({"W_T": W, "b_T": jnp.full((layer.output_size,), HIGHWAY_BIAS,
                                               cell.param_dtype)})
    return {"layers": layers, "highway": gates}

  def layer_params(self, params) -> list:
    """The per-layer parameters (the list ``init`` returns, or its "layers" entry with highway)."""
    return params["layers"] if self.highway else params

  def connect(self, i: int, params, x: Array, y: Array, rng: Array | None = None,
              mask: Array | None = None) -> Array:
    """Layer i's output after the connection rule (class docstring); x, y [..., D] and [..., H].

    ``mask`` (bool, x's shape without the feature axis) zeroes padded positions again after
    a residual or highway connection brought the input back in.
    """
    if self._skips(i):
      if self.highway:
        g = params["highway"][i]
        gate = jax.nn.sigmoid(x @ g["W_T"] + g["b_T"].reshape((1,) * (x.ndim - 1) + (-1,)))
        y = gate * y + (1.0 - gate) * x
      else:
        y = y + x
      if mask is not None:
        y = jnp.where(mask[..., None], y, jnp.zeros((), y.dtype))
    if rng is not None and self.dropout > 0.0 and i < len(self.layers) - 1:
      keep = jax.random.bernoulli(jax.random.fold_in(rng, i), 1.0 - self.dropout, y.shape)
      y = jnp.where(keep, y / (1.0 - self.dropout), 0.0)
    return y

  def apply(self, params, xs: Array, lengths: Array | None = None,
            initial_carries: Sequence | None = None, rng: Array | None = None,
            unroll: int | None = None, *, impl: str | None = None, remat: int | None = None):
    """Returns (final carries, one per layer, ys of the last layer [B, T, out]).

    ``rng`` switches dropout on (training); without it the stack is deterministic.
    ``unroll``, ``impl`` and ``remat`` as in ``unroll`` (None: the stack's own).
    Outputs at padded positions are zero.
    """
    unroll = self.unroll if unroll is None else unroll
    impl = self.impl if impl is None else impl
    remat = self.remat if remat is None else remat
    if initial_carries is None:
      initial_carries = [None] * len(self.layers)
    if len(initial_carries) != len(self.layers):
      raise ValueError(
          f"initial_carries: expected {len(self.layers)} carries, got {len(initial_carries)}")
    check_sequence_args(self.layers[0].cell, xs, lengths)
    check_params(self, params)
    for i, (layer, c0) in enumerate(zip(self.layers, initial_carries)):
      self._check_carry(i, layer, c0, xs.shape[:1], "initial_carries")
    mask = None if lengths is None else time_mask(jnp.clip(jnp.asarray(lengths), 0, xs.shape[1]),
                                                  xs.shape[1])
    carries = []
    h = xs
    for i, (layer, p, c0) in enumerate(zip(self.layers, self.layer_params(params),
                                           initial_carries)):
      carry, y = layer.apply(p, h, lengths, c0, unroll, impl=impl, remat=remat)
      carries.append(carry)
      h = self.connect(i, params, h, y, rng, mask)
    return carries, h

  @staticmethod
  def _check_carry(i: int, layer: Layer, carry, batch_shape: tuple[int, ...], name: str) -> None:
    """Layer i's carry (None: zeros; a (forward, backward) pair for a bidirectional layer)."""
    if carry is None:
      return
    if not layer.is_bidirectional:
      return check_carry(layer.cell, carry, batch_shape, f"{name}[{i}]")
    for j, c in enumerate(split_pair(carry, f"{name}[{i}]")):
      if c is not None:
        check_carry(layer.cell, c, batch_shape, f"{name}[{i}][{j}]")

  def initial_carries(self, batch_shape: tuple[int, ...] = ()) -> list:
    """Each layer's zero carry, for ``step`` (unidirectional layers only)."""
    self._check_steppable()
    return [layer.cell.initial_carry(batch_shape) for layer in self.layers]

  def _check_steppable(self):
    for i, layer in enumerate(self.layers):
      if layer.is_bidirectional:
        raise ValueError(f"layers[{i}]: a bidirectional layer reads the whole sequence and "
                         "cannot step one time step at a time")

  def step(self, params, carries: Sequence, x: Array, rng: Array | None = None,
           deltas: Sequence | None = None):
    """One time step through every layer: (new carries, y [..., out]) from x [..., D].

    The same layers and connection rule as ``apply``, one step at a time (so
    ``apply`` over T steps equals T calls of ``step``; tested). ``rng`` turns
    dropout on for this step. ``deltas`` (one carry-shaped pytree per layer)
    are added to each layer's new carry before the next layer reads it: the
    gradient lab's perturbations, whose gradient is dL/dc_t.
    """
    self._check_steppable()
    if len(carries) != len(self.layers):
      raise ValueError(f"carries: expected {len(self.layers)} carries, got {len(carries)}")
    if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != self.input_size:
      raise ValueError(f"x: expected shape [..., D={self.input_size}], got {tuple(jnp.shape(x))}")
    check_params(self, params)
    for i, (layer, c) in enumerate(zip(self.layers, carries)):
      self._check_carry(i, layer, c, jnp.shape(x)[:-1], "carries")
    new_carries = []
    h = x
    for i, (layer, p, c) in enumerate(zip(self.layers, self.layer_params(params), carries)):
      cell = layer.cell
      c, y = cell(p, c, h)
      if deltas is not None:
        c = jax.tree.map(jnp.add, c, deltas[i])
        y = cell.hidden(c)
      new_carries.append(c)
      h = self.connect(i, params, h, y, rng)
    return new_carries, h


def make_stack(cell: str | Cell, input_size: int, hidden_sizes: int | Sequence[int],
               bidirectional: bool = False, merge: str = "concat", dropout: float = 0.0,
               residual: bool = False, highway: bool = False, *, unroll: int = 1,
               impl: str = "auto", remat: int = 0, **cell_kwargs) -> Stack:
  """Builds a stack of cells; ``hidden_sizes`` gives one size per layer.

  ``unroll``, ``impl`` and ``remat`` say how ``Stack.apply`` runs the layers;
  other keyword arguments go to every cell (``param_dtype``, ``forget_bias``, ...).

  ``cell`` is a registered name (``recurrent.cells.CELLS``) or a cell object,
  whose class and fields (other than the sizes) every layer then copies: a
  user's own cell plugs in without the registry.
  """
  if isinstance(hidden_sizes, int):
    hidden_sizes = (hidden_sizes,)
  if len(hidden_sizes) == 0:
    raise ValueError("hidden_sizes: need at least one layer, got an empty list")
  layers = []
  d = input_size
  for i, h in enumerate(hidden_sizes):
    check_int(f"hidden_sizes[{i}]", h)
    if isinstance(cell, Cell):
      c = dataclasses.replace(cell, input_size=d, hidden_size=h, **cell_kwargs)
    else:
      c = make_cell(cell, d, h, **cell_kwargs)
    layer = Layer(c, bidirectional, merge)
    layers.append(layer)
    d = layer.output_size
  return Stack(tuple(layers), dropout, residual, highway, unroll, impl, remat)
