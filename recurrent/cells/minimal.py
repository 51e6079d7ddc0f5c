"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201).

Shape legend: B batch, T time, D input size, H hidden size, G gate width.

Their gates read only x_t, never h_{t-1}, so the recurrence is linear in h:

    h_t = a_t * h_{t-1} + b_t

and runs as a parallel (associative) scan in O(log T) depth. With the
"log-space" form of the paper (its Section 3 and Appendix B), which keeps the
candidate positive through g(x) = x + 1/2 for x >= 0, sigma(x) for x < 0:

  minGRU, gate order [k, p] (W_x [D, 2H], b [2H]):
    z_t = sigma(k_t),  h~_t = g(p_t)
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t             a = 1 - z, b = z h~
  minLSTM, gate order [k_f, k_i, p] (W_x [D, 3H], b [3H]):
    f_t = sigma(k_f),  i_t = sigma(k_i),  h~_t = g(p_t)
    f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)   (time-independent scale)
    h_t = f'_t * h_{t-1} + i'_t * h~_t                  a = f', b = i' h~

``step`` is the sequential form, as written above. ``parallel_scan`` computes
the same h_t with ``jax.lax.associative_scan`` in log space: with
log a_t, log b_t (b_t > 0), the pairs (A, L) = (sum log a, log h) combine as

    (A1, L1) . (A2, L2) = (A1 + A2, logaddexp(A2 + L1, L2)),

which is the recurrence h_t = a_t h_{t-1} + b_t from h = 0 without ever
leaving log space (so no product of many gates underflows); the initial
state, of any sign, enters as exp(sum_{s<=t} log a_s) * h_0. A padded step
has a = 1, b = 0 (log a = 0, log b = a very negative finite number, so
gradients stay finite) and leaves the state unchanged. The backward pass is
a custom VJP: the same linear recurrence backward in time, by an associative
scan in normal space (``_log_space_scan_bwd``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from recurrent.cells.base import Array, Cell, init_gate_blocks

NEG = -1e30  # log 0 for masked steps; finite so that logaddexp's gradient is never nan


def g(x: Array) -> Array:
  """x + 1/2 for x >= 0, sigma(x) for x < 0: positive, continuous, increasing."""
  return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def log_g(x: Array) -> Array:
  """log g(x), written to stay finite (and its gradient too) on both branches."""
  return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))


def _combine_log(left, right):
  A1, L1 = left
  A2, L2 = right
  return A1 + A2, jnp.logaddexp(A2 + L1, L2)


def _combine_linear(left, right):
  a1, b1 = left
  a2, b2 = right
  return a1 * a2, a2 * b1 + b2


@jax.custom_vjp
def _log_space_scan(log_a_TBH: Array, log_b_TBH: Array, h0_BH: Array) -> Array:
  """hs [T, B, H] of h_t = a_t h_{t-1} + b_t from h_0, by the log-space associative scan."""
  A_TBH, L_TBH = jax.lax.associative_scan(_combine_log, (log_a_TBH, log_b_TBH), axis=0)
  return jnp.exp(L_TBH) + jnp.exp(A_TBH) * h0_BH[None]


def _log_space_scan_fwd(log_a_TBH, log_b_TBH, h0_BH):
  hs_TBH = _log_space_scan(log_a_TBH, log_b_TBH, h0_BH)
  return hs_TBH, (log_a_TBH, log_b_TBH, h0_BH, hs_TBH)


def _log_space_scan_bwd(res, dhs_TBH):
  """The backward pass is the same linear recurrence run backward in time.

  With G_t = dL/dh_t in total (through every later state),

      G_t = dhs_t + a_{t+1} G_{t+1},    G_T = dhs_T,

  an associative scan in normal space (0 < a <= 1, so no product overflows),
  and then, with h_{t-1} the saved states (h_0 first),

      dL/dlog a_t = G_t a_t h_{t-1},   dL/dlog b_t = G_t b_t,   dL/dh_0 = a_1 G_1.

  Differentiating through the forward scan's tree of slices instead costs
  about twice as much (docs/PERFORMANCE.md).
  """
  log_a_TBH, log_b_TBH, h0_BH, hs_TBH = res
  a_TBH = jnp.exp(log_a_TBH)
  a_next_TBH = jnp.concatenate([a_TBH[1:], jnp.zeros_like(a_TBH[:1])], 0)
  _, G_TBH = jax.lax.associative_scan(_combine_linear, (a_next_TBH, dhs_TBH), reverse=True,
                                      axis=0)
  h_prev_TBH = jnp.concatenate([h0_BH[None], hs_TBH[:-1]], 0)
  return G_TBH * a_TBH * h_prev_TBH, G_TBH * jnp.exp(log_b_TBH), a_TBH[0] * G_TBH[0]


_log_space_scan.defvjp(_log_space_scan_fwd, _log_space_scan_bwd)


def linear_scan_log(log_a_TBH: Array, log_b_TBH: Array, mask_TB: Array | None, h0_BH: Array):
  """h_t = a_t h_{t-1} + b_t for all t at once: (h_T, hs_TBH), outputs zero at padded steps."""
  if mask_TB is not None:
    m = mask_TB[..., None]
    log_a_TBH = jnp.where(m, log_a_TBH, 0.0)
    log_b_TBH = jnp.where(m, log_b_TBH, NEG)
  hs = _log_space_scan(log_a_TBH, log_b_TBH, h0_BH)
  ys = hs if mask_TB is None else jnp.where(mask_TB[..., None], hs, 0.0)
  return hs[-1], ys


def linear_scan(a_TBH: Array, b_TBH: Array, mask_TB: Array | None, h0_BH: Array):
  """h_t = a_t h_{t-1} + b_t in normal space by ``jax.lax.associative_scan``: (h_T, hs_TBH).

  For recurrences whose |a_t| <= 1 is guaranteed (the LRU's complex lambda,
  the RG-LRU's a_t), so no product of many a_t overflows; complex a and b
  work as they are. A padded step (mask False) has a = 1, b = 0 and leaves
  the state unchanged; its output is zero. The initial state enters as the
  first step's b: b_1 <- a_1 h_0 + b_1. Differentiated by JAX (reverse mode).
  """
  if mask_TB is not None:
    m = mask_TB[..., None]
    a_TBH = jnp.where(m, a_TBH, jnp.ones((), a_TBH.dtype))
    b_TBH = jnp.where(m, b_TBH, jnp.zeros((), b_TBH.dtype))
  b_TBH = b_TBH.at[0].add(a_TBH[0] * h0_BH)
  _, hs_TBH = jax.lax.associative_scan(_combine_linear, (a_TBH, b_TBH), axis=0)
  ys = hs_TBH if mask_TB is None else jnp.where(mask_TB[..., None], hs_TBH,
                                                jnp.zeros((), hs_TBH.dtype))
  return hs_TBH[-1], ys


@dataclasses.dataclass(frozen=True)
class _Minimal(Cell):
  """Shared parts: input-only gates (W_x, b; no W_h) and the parallel path."""

  def init(self, key: Array) -> dict:
    k_x, k_b = jax.random.split(key)
    w_x = init_gate_blocks(self.kernel_init, k_x, self.input_size, self.hidden_size,
                           self.num_gates, self.param_dtype)
    b = self.bias_init(k_b, (self.gate_size,), self.param_dtype)
    return {"W_x": w_x, "b": b}

  def coefficients(self, xp: Array) -> tuple[Array, Array]:
    """(a, b) of h_t = a_t h_{t-1} + b_t, in normal space."""
    raise NotImplementedError

  def log_coefficients(self, xp: Array) -> tuple[Array, Array]:
    """(log a, log b), computed without forming a or b."""
    raise NotImplementedError

  def recurrent_kernel(self, params: dict) -> None:
    """None: the gates read only x_t, so the step has no recurrent matmul."""
    return None

  def post(self, params: dict, carry: Array, xp: Array, u: None) -> tuple[Array, Array]:
    """The sequential form: h_t = a_t * h_{t-1} + b_t."""
    del params, u  # the gates read only x_t, already projected into xp
    a, b = self.coefficients(xp.astype(self.carry_dtype))
    h = a * carry + b
    return h, h

  def parallel_scan(self, params: dict, xp_TBG: Array, mask_TB: Array | None, carry: Array):
    """(final carry, ys_TBH) by the associative scan in log space (module docstring)."""
    del params
    log_a, log_b = self.log_coefficients(xp_TBG.astype(self.carry_dtype))
    return linear_scan_log(log_a, log_b, mask_TB, carry)

  def diagonal_jacobian(self, params: dict, xp: Array) -> Array:
    """|dh_t/dh_{t-1}| = a_t [..., H]: the recurrence's Jacobian is diagonal."""
    del params
    return self.coefficients(xp.astype(self.carry_dtype))[0]


@dataclasses.dataclass(frozen=True)
class MinGRU(_Minimal):
  """minGRU: parameters W_x [D, 2H], b [2H] (gate order k, p)."""

  num_gates = 2

  def coefficients(self, xp):
    k, p = jnp.split(xp, 2, axis=-1)
    z = jax.nn.sigmoid(k)
    return 1.0 - z, z * g(p)

  def log_coefficients(self, xp):
    k, p = jnp.split(xp, 2, axis=-1)
    return -jax.nn.softplus(k), -jax.nn.softplus(-k) + log_g(p)   # log(1 - z), log z + log h~


@dataclasses.dataclass(frozen=True)
class MinLSTM(_Minimal):
  """minLSTM: parameters W_x [D, 3H], b [3H] (gate order k_f, k_i, p)."""

  num_gates = 3

  def coefficients(self, xp):
    k_f, k_i, p = jnp.split(xp, 3, axis=-1)
    # f' = f / (f + i) = sigma(-d), i' = sigma(d), d = log i - log f
    d = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
    return jax.nn.sigmoid(-d), jax.nn.sigmoid(d) * g(p)

  def log_coefficients(self, xp):
    k_f, k_i, p = jnp.split(xp, 3, axis=-1)
    d = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
    return -jax.nn.softplus(d), -jax.nn.softplus(-d) + log_g(p)
