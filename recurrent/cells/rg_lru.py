"""The Real-Gated Linear Recurrent Unit of Griffin (De et al. 2024, "Griffin: Mixing Gated Linear
Recurrences with Local Attention for Efficient Language Models", arXiv:2402.19427, Section 2.4).

Shape legend: B batch, T time, D input size, H hidden size.

With the fused input projection [r, i, v] = x_t W_x + b (gate order r, i, v):

    r_t = sigma(x_t W_a + b_a)                  recurrence gate
    i_t = sigma(x_t W_x + b_x)                  input gate
    a_t = a^(c r_t),  a = sigma(Lambda), c = 8  so log a_t = -c r_t softplus(-Lambda)
    h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * v_t),     y_t = h_t

The gates read only x_t, so the recurrence is linear in h and diagonal:
dh_t/dh_{t-1} = diag(a_t), with 0 < a_t < 1.

Where this cell differs from the paper's block: in Griffin the RG-LRU's input
x_t is already H wide (a linear projection of the residual stream, then a
short convolution), and the gates are (block-diagonal) H x H maps of it. A
cell here reads x_t of any width D, so v_t = x_t W_v + b_v is that projection
and the gates read x_t directly: a linear map of the projected input is a
linear map of x_t, so the family is the same (no convolution). All three
blocks are drawn with ``kernel_init`` (LeCun normal, Griffin's fan-in
variance scaling), biases zero.

Initialisation of Lambda, as the paper's text says: a^c uniform in
[0.9, 0.999] (``a_min``, ``a_max``), i.e. Lambda = logit(u^(1/c)),
u ~ U[a_min, a_max]. (The released recurrentgemma code draws a itself, not a^c,
on the ring [0.9, 0.999] by area; at initialisation r_t ~ sigma(0) = 1/2, so
the effective a_t = a^(c/2) is then in [0.66, 0.996].)

sqrt(1 - a_t^2) is computed as sqrt(-expm1(2 log a_t)) with its derivative
bounded at 1000 where a_t -> 1 (``_sqrt_bounded``; Griffin bounds it likewise,
against NaN in low precision).

``post`` is the sequential form; ``parallel_scan`` the same recurrence by
``jax.lax.associative_scan`` in normal space (0 < a_t < 1, so no product
overflows; ``recurrent.cells.minimal.linear_scan``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from recurrent.cells.base import Array, Cell, expand_like, init_gate_blocks
from recurrent.cells.minimal import linear_scan

MAX_SQRT_GRADIENT = 1000.0


@jax.custom_jvp
def _sqrt_bounded(x: Array) -> Array:
  """sqrt(x), whose derivative is capped at MAX_SQRT_GRADIENT (its value is exact)."""
  return jnp.sqrt(x)


@_sqrt_bounded.defjvp
def _sqrt_bounded_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  floor = 1.0 / (4.0 * MAX_SQRT_GRADIENT ** 2)       # where 0.5 / sqrt(x) = MAX_SQRT_GRADIENT
  return jnp.sqrt(x), dx * 0.5 / jnp.sqrt(jnp.maximum(x, floor))


@dataclasses.dataclass(frozen=True)
class RGLRU(Cell):
  """RG-LRU cell. Parameters: W_x [D, 3H], b [3H] (gate order r, i, v), Lambda [H]."""

  c: float = 8.0
  a_min: float = 0.9           # a^c ~ U[a_min, a_max] at initialisation
  a_max: float = 0.999

  num_gates = 3

  def __post_init__(self):
    super().__post_init__()
    if not 0.0 < self.a_min < self.a_max < 1.0:
      raise ValueError(f"a_min, a_max: need 0 < a_min < a_max < 1, got {self.a_min!r}, "
                       f"{self.a_max!r}")
    if not self.c > 0:
      raise ValueError(f"c: must be > 0, got {self.c!r}")

  def init(self, key: Array) -> dict:
    k_w, k_b, k_lam = jax.random.split(key, 3)
    w_x = init_gate_blocks(self.kernel_init, k_w, self.input_size, self.hidden_size,
                           self.num_gates, self.param_dtype)
    b = self.bias_init(k_b, (self.gate_size,), self.param_dtype)
    u = jax.random.uniform(k_lam, (self.hidden_size,), jnp.float32, self.a_min, self.a_max)
    a = u ** (1.0 / self.c)
    lam = jnp.log(a) - jnp.log1p(-a)                                 # logit(a)
    return {"W_x": w_x, "b": b, "Lambda": lam.astype(self.param_dtype)}

  def recurrent_kernel(self, params: dict) -> None:
    """None: the gates read only x_t, so the step has no recurrent matmul."""
    return None

  def coefficients(self, params: dict, xp: Array) -> tuple[Array, Array]:
    """(a_t, b_t) of h_t = a_t h_{t-1} + b_t, b_t = sqrt(1 - a_t^2) i_t v_t."""
    xp = xp.astype(self.carry_dtype)
    k_r, k_i, v = jnp.split(xp, 3, axis=-1)
    lam = expand_like(params["Lambda"].astype(self.carry_dtype), k_r)
    log_a = -self.c * jax.nn.sigmoid(k_r) * jax.nn.softplus(-lam)     # c r_t log sigma(Lambda)
    multiplier = _sqrt_bounded(-jnp.expm1(2.0 * log_a))               # sqrt(1 - a_t^2)
    return jnp.exp(log_a), multiplier * jax.nn.sigmoid(k_i) * v

  def post(self, params: dict, carry: Array, xp: Array, u: None) -> tuple[Array, Array]:
    """The sequential form: h_t = a_t * h_{t-1} + b_t."""
    del u
    a, b = self.coefficients(params, xp)
    h = a * carry + b
    return h, h

  def parallel_scan(self, params: dict, xp_TBG: Array, mask_TB: Array | None, carry: Array):
    """(final carry, ys_TBH) by the associative scan in normal space."""
    a_TBH, b_TBH = self.coefficients(params, xp_TBG)
    return linear_scan(a_TBH, b_TBH, mask_TB, carry)

  def diagonal_jacobian(self, params: dict, xp: Array) -> Array:
    """|dh_t/dh_{t-1}| = a_t [..., H]."""
    return self.coefficients(params, xp)[0]
