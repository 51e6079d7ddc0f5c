"""What every cell shares: the interface, initialisers and argument checks.

Shape legend: B batch (any leading shape), T time, D input size, H hidden size,
G gate width (H times the number of gates).

A cell is a frozen dataclass holding only static configuration (sizes, flags,
initialisers), so it is hashable and can be a static argument of ``jax.jit``.
Its parameters are an explicit pytree (a dict of arrays) returned by
``init``; every method is a pure function of its arguments:

    params = cell.init(key)                       # dict of arrays
    carry = cell.initial_carry(batch_shape)       # zeros, float32
    xp_BTG = cell.project_inputs(params, x_BTD)   # input side, all steps at once
    carry, y_BH = cell.step(params, carry, xp_BG) # only what depends on h_{t-1}

A cell writes its step in two parts, split at its one recurrent matmul:

    u_BG = cell.hidden(carry) @ cell.recurrent_kernel(params)
    carry, y_BH = cell.post(params, carry, xp_BG, u_BG)

``step`` is that composition. ``recurrent.engine`` runs the same two parts
with the recurrent weight's gradient taken out of the backward loop, so a new
cell written this way gets the fast path (and forward-mode autodiff) for free.
A cell without a recurrent matmul (a linear recurrence whose gates read only
x_t) returns None from ``recurrent_kernel`` and gets u = None.

Weights are laid out (in, out), so a projection is ``x @ W``; fused gate
matrices are the gates' blocks concatenated along the output axis in the
order each cell's docstring gives.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from recurrent.checks import check_int

Array = jax.Array
Initializer = Callable[..., Array]

default_kernel_init = jax.nn.initializers.lecun_normal()
default_recurrent_init = jax.nn.initializers.orthogonal()
default_bias_init = jax.nn.initializers.zeros


def _identity(key, shape, dtype=jnp.float32):
  """The identity matrix (IRNN, Le et al. 2015); ``key`` is unused."""
  del key
  if len(shape) != 2 or shape[0] != shape[1]:
    raise ValueError(f"recurrent_init: 'identity' needs a square block, got shape {tuple(shape)}")
  return jnp.eye(shape[0], dtype=dtype)


# Recurrent initialisers by name, for configs (``--config.model.cell=rnn:recurrent_init=glorot``).
# Each draws one H x H gate block (``init_gate_blocks``).
RECURRENT_INITS: dict[str, Initializer] = {
    "orthogonal": default_recurrent_init,               # Saxe et al. 2014: all singular values 1
    "glorot": jax.nn.initializers.glorot_uniform(),     # Glorot & Bengio 2010: U(+-sqrt(6 / 2H))
    "identity": _identity,                              # Le et al. 2015 (IRNN)
}


def recurrent_initializer(init: Initializer | str) -> Initializer:
  """The initialiser itself, or the one ``RECURRENT_INITS`` names (an unknown name lists them)."""
  if isinstance(init, str):
    if init not in RECURRENT_INITS:
      raise ValueError(f"recurrent_init: unknown initialiser {init!r}; valid names are "
                       f"{sorted(RECURRENT_INITS)}")
    return RECURRENT_INITS[init]
  return init


def _shape(x) -> tuple[int, ...]:
  return tuple(jnp.shape(x))


class _ShapeRepr:
  """A leaf shown as its shape, so that a pytree prints as its layout: LSTMCarry(h=(4, 8), c=(4, 8))."""

  def __init__(self, shape):
    self.shape = shape

  def __repr__(self):
    return str(self.shape)


def _layout(tree) -> str:
  if not jax.tree.leaves(tree):
    return repr(tree)
  if jax.tree.structure(tree).num_nodes == 1:  # one array
    return f"an array of shape {_shape(tree)}"
  return repr(jax.tree.map(lambda v: _ShapeRepr(_shape(v)), tree))


def check_like(name: str, tree, like, note: Callable[[str, tuple], str] | str = "") -> None:
  """Raises ValueError naming the first entry of ``tree`` whose presence or shape differs from ``like``.

  Static shapes only (``jnp.shape``), so under ``jit`` it costs nothing at run time. The message
  names the entry (``params['W_h']``, ``initial_carry.h``), the expected shape and the one
  received; ``note`` (a string, or ``note(path, expected_shape)``) follows the expected shape,
  e.g. "[B=4, H=8]". A tree of another kind altogether (an array for an LSTMCarry, a tuple
  for a dict) is shown whole against the expected layout.
  """
  got = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
  want = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(like)[0]}
  if want and not got.keys() & want.keys():
    raise ValueError(f"{name}: expected {_layout(like)}, got {_layout(tree)}")
  for path in sorted(want.keys() - got.keys()):
    raise ValueError(f"{name}: missing {path}, expected shape {_shape(want[path])}")
  for path in sorted(got.keys() - want.keys()):
    raise ValueError(f"{name}: unexpected entry {path}; expected only {sorted(want)}")
  for path, w in want.items():
    if _shape(got[path]) != _shape(w):
      extra = note(path, _shape(w)) if callable(note) else note
      raise ValueError(f"{name}{path}: expected shape {_shape(w)}{extra}, got {_shape(got[path])}")
  if jax.tree.structure(tree) != jax.tree.structure(like):
    raise ValueError(f"{name}: expected {_layout(like)}, got {_layout(tree)}")


@functools.lru_cache(maxsize=256)
def _cached_eval_shape(owner, method: str, args: tuple):
  return _eval_shape(owner, method, args)


def _eval_shape(owner, method: str, args: tuple):
  if method == "init":
    return jax.eval_shape(lambda: owner.init(jax.random.key(0)))
  return jax.eval_shape(lambda: getattr(owner, method)(*args))


def abstract(owner, method: str = "init", *args):
  """The shapes and dtypes (``jax.ShapeDtypeStruct``s) of ``owner.init(key)`` or ``owner.method(*args)``.

  Traced once per (owner, args) and cached: cells and stacks are frozen, hashable dataclasses.
  Nothing is computed; this is what the shape checks of ``recurrent.layers`` compare against.
  """
  try:
    hash((owner, args))
  except TypeError:   # a cell with an unhashable field: trace every time
    return _eval_shape(owner, method, args)
  return _cached_eval_shape(owner, method, args)


def expand_like(v: Array, x: Array) -> Array:
  """Reshapes a vector [N] to [1, ..., 1, N] with x's rank, for explicit broadcasting.

  The tests run with ``jax_numpy_rank_promotion='raise'``; biases and
  peepholes are broadcast on purpose, and this says so.
  """
  return v.reshape((1,) * (x.ndim - 1) + v.shape)


def gate_activations(pre: Array, sigmoid_blocks: tuple[bool, ...]) -> Array:
  """The activations of a fused pre-activation [.., k H]: block j through sigma if ``sigmoid_blocks[j]``, else tanh.

      sigma(x) = (1 + tanh(x / 2)) / 2

  The value is one tanh over the whole array (the sigma blocks scaled by 1/2
  before it and mapped to (0, 1) after): XLA's CPU backend runs one
  transcendental over a contiguous array several times faster than one per
  slice, and its tanh faster than its logistic (an LSTM's gate math in a
  forward-only loop at B 64, H 256: 204 us per step as four slices, 41 us
  this way). Derivatives (a custom JVP) are the textbook ones, block by
  block, because inside a training step that per-slice form is the faster
  one for XLA (a single tanh there cost the LSTM train step 12-18%).
  docs/PERFORMANCE.md, session 7. Equal to ``jax.nn.sigmoid`` / ``jnp.tanh``
  block by block up to rounding, derivatives included (tests/test_cells.py).
  """
  k = len(sigmoid_blocks)
  if pre.shape[-1] % k:
    raise ValueError(f"gate_activations: last axis {pre.shape[-1]} is not {k} equal blocks")
  return _gate_activations(pre, tuple(bool(b) for b in sigmoid_blocks))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _gate_activations(pre: Array, sigmoid_blocks: tuple[bool, ...]) -> Array:
  H = pre.shape[-1] // len(sigmoid_blocks)
  half = np.repeat(np.where(sigmoid_blocks, 0.5, 1.0), H)
  scale = expand_like(jnp.asarray(half, pre.dtype), pre)
  shift = expand_like(jnp.asarray(np.repeat(np.where(sigmoid_blocks, 0.5, 0.0), H), pre.dtype), pre)
  return jnp.tanh(pre * scale) * scale + shift


@_gate_activations.defjvp
def _gate_activations_jvp(sigmoid_blocks, primals, tangents):
  (pre,), (dpre,) = primals, tangents
  k = len(sigmoid_blocks)
  outs = [jax.jvp(jax.nn.sigmoid if sig else jnp.tanh, (x,), (dx,))
          for sig, x, dx in zip(sigmoid_blocks, jnp.split(pre, k, -1), jnp.split(dpre, k, -1))]
  return jnp.concatenate([y for y, _ in outs], -1), jnp.concatenate([dy for _, dy in outs], -1)


def sigmoid(x: Array) -> Array:
  """sigma(x) = (1 + tanh(x / 2)) / 2: ``gate_activations`` with one sigma block.

  Its value is a tanh, which XLA:CPU runs faster than its logistic (an exp
  and a divide): a GRU's forward step (B 32, H 128-256) 9-11% faster
  (docs/PERFORMANCE.md, session 8). Its derivative is ``jax.nn.sigmoid``'s.
  """
  return gate_activations(x, (True,))


def materialised_transpose(x_NK: Array) -> Array:
  """x^T [K, N], kept as an array of its own by an optimization barrier.

  Without the barrier XLA folds the transpose back into the dot that reads
  it; with it, a weight gradient x^T dy reads this small array as an
  ordinary matmul operand, where XLA's CPU backend would otherwise transpose
  the larger [N, G] dy (docs/PERFORMANCE.md, session 7).
  """
  return jax.lax.optimization_barrier(x_NK.T)


def matmul_transposed_lhs(xT_KN: Array, W_KG: Array) -> Array:
  """x W [N, G] from x^T [K, N]; its transpose in W is the plain matmul x^T dy."""
  return jax.lax.dot_general(xT_KN, W_KG, (((0,), (0,)), ((), ())))


@jax.custom_jvp
def rows_matmul(x_NK: Array, W_KG: Array) -> Array:
  """x W for many rows N, whose reverse-mode weight gradient x^T dy is a plain matmul.

  The value is ``x_NK @ W_KG``. The JVP rule writes W's part of the tangent
  as (x^T)^T dW from ``materialised_transpose(x)``, so that its transpose,
  the weight gradient x^T dy, reads that small array as an ordinary matmul
  operand: autodiff's own form contracts the first axes of x [N, K] and
  dy [N, G], for which XLA's CPU backend transposes the larger dy. With the
  engine's dW_h done the same way (``recurrent.engine``), the train suite's
  LSTM step is 11-22% faster and the GRU's 14% (docs/PERFORMANCE.md,
  session 7). The value, when nothing differentiates, is the ordinary matmul.
  """
  return x_NK @ W_KG


def _rows_matmul_jvp(primals, tangents):
  (x_NK, W_KG), (dx_NK, dW_KG) = primals, tangents
  terms = []
  if not isinstance(dx_NK, SymbolicZero):
    terms.append(dx_NK @ W_KG)
  if not isinstance(dW_KG, SymbolicZero):
    terms.append(matmul_transposed_lhs(materialised_transpose(x_NK), dW_KG))
  y = x_NK @ W_KG
  return y, functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(y)


rows_matmul.defjvp(_rows_matmul_jvp, symbolic_zeros=True)


def affine(x_NK: Array, W_KG: Array, b_G: Array) -> Array:
  """x W + b as one matmul, [x, 1] [W; b], through ``rows_matmul``.

  The bias rides in the matmul: neither a broadcast add over [N, G] in the
  forward pass nor a column sum of dy for db (the last row of the weight
  gradient) is a pass of its own, and one [N, G] buffer fewer is live. It
  pays when N is well above K + 1, the rows of the [W; b] copy it makes.
  """
  x1 = jnp.concatenate([x_NK, jnp.ones((x_NK.shape[0], 1), x_NK.dtype)], 1)
  return rows_matmul(x1, jnp.concatenate([W_KG, b_G[None, :].astype(W_KG.dtype)], 0))


def init_gate_blocks(init: Initializer, key: Array, rows: int, hidden_size: int,
                     num_gates: int, dtype) -> Array:
  """[rows, num_gates * H]: each gate's [rows, H] block drawn independently.

  Drawing per gate matters for the orthogonal recurrent initialiser: each
  gate's H x H block is orthogonal, as in Flax and Haiku, rather than one
  H x 4H matrix with orthonormal rows.
  """
  keys = jax.random.split(key, num_gates)
  # drawn in (at least) float32 and then cast: the orthogonal initialiser's QR has no bf16 kernel
  draw = jnp.promote_types(dtype, jnp.float32)
  blocks = [init(k, (rows, hidden_size), draw) for k in keys]
  return jnp.concatenate(blocks, axis=-1).astype(dtype)


def check_chrono(value: Any) -> None:
  """``chrono`` is 0 (off) or T_max >= 3, an integer (the range [1, T_max - 1] must not be empty)."""
  if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value in (1, 2):
    raise ValueError(f"chrono: must be 0 (off) or an integer T_max >= 3, got {value!r}")


def chrono_bias(key: Array, t_max: int, hidden_size: int, dtype) -> Array:
  """[H] draws of log(U[1, T_max - 1]): the chrono bias of Tallec & Ollivier (2018).

  A gate sigma(b) that keeps a fraction f = sigma(b) of the state per step
  forgets with a characteristic time 1 / (1 - f) = 1 + e^b steps, so
  b = log(tau - 1), tau ~ U[2, T_max], spreads the units' memories over the
  time scales up to T_max ("Can recurrent neural networks warp time?", ICLR
  2018, Section 4: b_f ~ log(U([1, T_max - 1])), b_i = -b_f for an LSTM).
  """
  u = jax.random.uniform(key, (hidden_size,), jnp.float32, 1.0, float(t_max - 1))
  return jnp.log(u).astype(dtype)


@dataclasses.dataclass(frozen=True)
class Cell:
  """Base class: sizes, initialisers and the shared parts of the interface.

  Attributes:
    input_size: D, the size of x_t.
    hidden_size: H, the size of h_t.
    kernel_init: initialiser of the input kernel W_x (default LeCun normal).
    recurrent_init: initialiser of the recurrent kernel W_h (default
      orthogonal, drawn per gate), or a name in ``RECURRENT_INITS``.
    bias_init: initialiser of the biases (default zeros).
    param_dtype: dtype of the weights. Carries are always float32, whatever
      the weights are, so that a long recurrence does not accumulate
      rounding in bfloat16.
  """

  input_size: int
  hidden_size: int
  kernel_init: Initializer = default_kernel_init
  recurrent_init: Initializer | str = default_recurrent_init
  bias_init: Initializer = default_bias_init
  param_dtype: Any = jnp.float32

  num_gates = 1  # blocks in the fused gate matrices; overridden by subclasses
  # True when ``post`` reads xp and u only through their sum xp + u (an LSTM, an Elman RNN): the
  # engine then feeds the tangent of W's part of u in with xp's, one input instead of two.
  post_reads_sum = False

  def __post_init__(self):
    check_int("input_size", self.input_size)
    check_int("hidden_size", self.hidden_size)
    try:
      dtype = jnp.dtype(self.param_dtype)
    except TypeError:
      dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f"param_dtype: must be a floating dtype (float32, bfloat16, float16, "
                       f"float64), got {self.param_dtype!r}")
    recurrent_initializer(self.recurrent_init)   # a bad name fails here, naming the field

  @property
  def carry_dtype(self):
    """float32, or float64 when the weights are float64 (never narrower than float32)."""
    return jnp.promote_types(self.param_dtype, jnp.float32)

  @property
  def gate_size(self) -> int:
    """G = num_gates * H, the width of the projected input."""
    return self.num_gates * self.hidden_size

  def initial_carry(self, batch_shape: tuple[int, ...] = ()):
    """Zeros for h_0 of shape [*batch_shape, H], in ``carry_dtype``."""
    return jnp.zeros((*batch_shape, self.hidden_size), self.carry_dtype)

  def hidden(self, carry) -> Array:
    """h_t, the part of the carry a layer reads as the state (the carry itself here)."""
    return carry

  def init_kernels(self, key: Array) -> tuple[Array, Array, Array]:
    """(W_x [D, G], W_h [H, G], b [G]) drawn with the cell's initialisers."""
    k_x, k_h, k_b = jax.random.split(key, 3)
    w_x = init_gate_blocks(self.kernel_init, k_x, self.input_size, self.hidden_size,
                           self.num_gates, self.param_dtype)
    w_h = init_gate_blocks(recurrent_initializer(self.recurrent_init), k_h, self.hidden_size,
                           self.hidden_size, self.num_gates, self.param_dtype)
    b = self.bias_init(k_b, (self.gate_size,), self.param_dtype)
    return w_x, w_h, b

  def project_inputs(self, params: dict, xs: Array) -> Array:
    """x @ W_x + b for every step at once: [..., D] -> [..., G].

    This is the only input-side work; a layer calls it once before the scan.
    With more rows N (the product of the leading axes) than D + 1 the bias
    rides in the matmul (``affine``): copying the [D + 1, G] weights is
    cheaper than a separate pass of the bias over [N, G], and one [N, G]
    buffer fewer is live (the train suite's peak memory 13-18% lower; docs/PERFORMANCE.md,
    session 7), and the weight gradient is ``rows_matmul``'s plain matmul. A single step (decoding,
    streaming at B = 1) adds the bias after the matmul instead, where copying
    the weights at every call would cost more than the add (0.6 -> 0.8 ms
    per token at B = 1, H 256).
    """
    if xs.shape[-1] != self.input_size:
      raise ValueError(
          f"xs: last axis must be input_size={self.input_size}, got shape {tuple(xs.shape)}")
    if math.prod(xs.shape[:-1]) > xs.shape[-1] + 1:
      xw = affine(xs.reshape(-1, xs.shape[-1]), params["W_x"], params["b"])
      return xw.reshape(xs.shape[:-1] + (-1,))
    xw = xs @ params["W_x"]
    return xw + expand_like(params["b"], xw)

  def init(self, key: Array) -> dict:
    raise NotImplementedError

  def recurrent_kernel(self, params: dict) -> Array | None:
    """W of u_t = hidden(c_{t-1}) @ W, the step's one O(H^2) operation (None: the cell has none)."""
    return params["W_h"]

  def post(self, params: dict, carry, xp: Array, u: Array | None):
    """Everything of a step but the recurrent matmul: (carry, y) from c_{t-1}, xp_t and u_t."""
    raise NotImplementedError

  def step(self, params: dict, carry, xp: Array):
    """One step from projected inputs xp_t: ``post(params, carry, xp, hidden(carry) @ W)``."""
    W = self.recurrent_kernel(params)
    u = None if W is None else self.hidden(carry) @ W
    return self.post(params, carry, xp, u)

  def __call__(self, params: dict, carry, x: Array):
    """One step from the raw input: step(params, carry, project_inputs(params, x))."""
    return self.step(params, carry, self.project_inputs(params, x))
