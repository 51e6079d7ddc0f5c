"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for
Long Sequences", ICML, arXiv:2303.06349).

Shape legend: B batch, T time, D input size, H output (hidden) size, N state size.

A complex diagonal linear recurrence read out by a real linear map:

    lambda = exp(-exp(nu_log) + i exp(theta_log))          [N], |lambda| < 1 always
    h_t = lambda * h_{t-1} + exp(gamma_log) * (B x_t)       h in C^N, B = B_re + i B_im
    y_t = Re(C h_t) + D x_t                                 C = C_re + i C_im

Initialisation (their Section 3 and appendix): |lambda| drawn uniformly on
the ring r_min <= |lambda| <= r_max of the complex plane (|lambda|^2 uniform
in [r_min^2, r_max^2]; nu_log = log(-log|lambda|)), the phase uniform in
[0, max_phase] (theta_log = log(phase)); the normalisation
gamma = sqrt(1 - |lambda|^2) (trainable, as gamma_log), which keeps the state's
variance at that of the input for white-noise input; B_re, B_im ~ N(0, 1/(2D)),
C_re, C_im ~ N(0, 1/N). The defaults r_min = 0.9, r_max = 0.999,
max_phase = pi/10 are the paper's for its long-range tasks (its code's general
defaults are 0, 1 and 2 pi).

Our layout (in, out): the input side is one matmul, xp = x [B_re | B_im | D]
([D, 2N + H], W_x), so D is a dense [D, H] map (the paper's D is diagonal, its
input and output having the same width; here they need not), drawn with
``kernel_init``. No bias, as in the paper. C_re, C_im are [N, H], so
Re(C h) = h_re C_re - h_im C_im.

The carry is ``LRUCarry(re, im, y)``: the state as two float32 halves (so every
layer, mask and checkpoint sees real arrays) and the last output, which is what
``hidden`` returns (y_t depends on x_t, so it cannot be recomputed from h_t).
The gradient lab's "carry" part measures dL/d(re, im, y); "hidden" only y.

``post`` is the sequential form, in real arithmetic; ``parallel_scan`` the same
recurrence in complex arithmetic by ``jax.lax.associative_scan``
(``recurrent.cells.minimal.linear_scan``; |lambda| < 1, so in normal space).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from recurrent.cells.base import Array, Cell, expand_like
from recurrent.cells.minimal import linear_scan
from recurrent.checks import check_int


class LRUCarry(NamedTuple):
  """The LRU state: Re h, Im h [.., N] and the last output y [.., H]."""

  re: Array
  im: Array
  y: Array


def ring_init(key: Array, n: int, r_min: float, r_max: float, max_phase: float):
  """(nu_log, theta_log) [N]: |lambda| uniform on the ring (by area), phase U[0, max_phase]."""
  k_r, k_p = jax.random.split(key)
  u_r = jax.random.uniform(k_r, (n,), jnp.float32)
  u_p = jax.random.uniform(k_p, (n,), jnp.float32)
  r2 = u_r * (r_max ** 2 - r_min ** 2) + r_min ** 2             # |lambda|^2
  nu_log = jnp.log(-0.5 * jnp.log(r2))                          # -log|lambda| = exp(nu_log)
  theta_log = jnp.log(max_phase * u_p)
  return nu_log, theta_log


@dataclasses.dataclass(frozen=True)
class LRU(Cell):
  """LRU cell. Parameters: W_x [D, 2N + H], nu_log, theta_log, gamma_log [N], C_re, C_im [N, H]."""

  state_size: int = 0          # N; 0: N = H
  r_min: float = 0.9
  r_max: float = 0.999
  max_phase: float = math.pi / 10

  num_gates = 1  # unused: the input side is [B_re | B_im | D], of width 2N + H

  def __post_init__(self):
    super().__post_init__()
    check_int("state_size", self.state_size, 0, note="0: hidden_size")
    if not 0.0 <= self.r_min < self.r_max < 1.0:
      raise ValueError(f"r_min, r_max: need 0 <= r_min < r_max < 1, got {self.r_min!r}, "
                       f"{self.r_max!r}")
    if not self.max_phase > 0.0:
      raise ValueError(f"max_phase: must be > 0, got {self.max_phase!r}")

  @property
  def n(self) -> int:
    return self.state_size or self.hidden_size

  @property
  def gate_size(self) -> int:
    return 2 * self.n + self.hidden_size

  def init(self, key: Array) -> dict:
    N, H, D = self.n, self.hidden_size, self.input_size
    k_lam, k_b, k_c, k_d = jax.random.split(key, 4)
    nu_log, theta_log = ring_init(k_lam, N, self.r_min, self.r_max, self.max_phase)
    gamma_log = 0.5 * jnp.log1p(-jnp.exp(-2.0 * jnp.exp(nu_log)))   # log sqrt(1 - |lambda|^2)
    b_re_im = jax.random.normal(k_b, (D, 2 * N), jnp.float32) / math.sqrt(2 * D)
    c_re, c_im = jax.random.normal(k_c, (2, N, H), jnp.float32) / math.sqrt(N)
    d = self.kernel_init(k_d, (D, H), jnp.float32)
    dt = self.param_dtype
    return {"W_x": jnp.concatenate([b_re_im, d], axis=-1).astype(dt),
            "nu_log": nu_log.astype(dt), "theta_log": theta_log.astype(dt),
            "gamma_log": gamma_log.astype(dt), "C_re": c_re.astype(dt), "C_im": c_im.astype(dt)}

  def project_inputs(self, params: dict, xs: Array) -> Array:
    """x [B_re | B_im | D] for every step at once: [..., D] -> [..., 2N + H] (no bias)."""
    if xs.shape[-1] != self.input_size:
      raise ValueError(
          f"xs: last axis must be input_size={self.input_size}, got shape {tuple(xs.shape)}")
    return xs @ params["W_x"]

  def initial_carry(self, batch_shape: tuple[int, ...] = ()) -> LRUCarry:
    z_N = jnp.zeros((*batch_shape, self.n), self.carry_dtype)
    return LRUCarry(re=z_N, im=z_N, y=jnp.zeros((*batch_shape, self.hidden_size), self.carry_dtype))

  def hidden(self, carry: LRUCarry) -> Array:
    return carry.y

  def recurrent_kernel(self, params: dict) -> None:
    """None: the recurrence is diagonal (elementwise), no matmul on h_{t-1}."""
    return None

  def _lambda(self, params: dict) -> tuple[Array, Array, Array]:
    """(Re lambda, Im lambda, gamma) [N] in the carry dtype."""
    f = lambda a: a.astype(self.carry_dtype)  # noqa: E731
    modulus = jnp.exp(-jnp.exp(f(params["nu_log"])))
    phase = jnp.exp(f(params["theta_log"]))
    return modulus * jnp.cos(phase), modulus * jnp.sin(phase), jnp.exp(f(params["gamma_log"]))

  def _readout(self, params: dict, h_re: Array, h_im: Array, dx: Array) -> Array:
    """y = Re(C h) + D x = h_re C_re - h_im C_im + D x."""
    f = lambda a: a.astype(self.carry_dtype)  # noqa: E731
    return h_re @ f(params["C_re"]) - h_im @ f(params["C_im"]) + dx

  def post(self, params: dict, carry: LRUCarry, xp: Array, u: None) -> tuple[LRUCarry, Array]:
    """The sequential form, in real arithmetic (module docstring)."""
    del u
    N = self.n
    xp = xp.astype(self.carry_dtype)
    bx_re, bx_im, dx = xp[..., :N], xp[..., N:2 * N], xp[..., 2 * N:]
    l_re, l_im, gamma = (expand_like(v, bx_re) for v in self._lambda(params))
    h_re = l_re * carry.re - l_im * carry.im + gamma * bx_re
    h_im = l_re * carry.im + l_im * carry.re + gamma * bx_im
    y = self._readout(params, h_re, h_im, dx)
    return LRUCarry(h_re, h_im, y), y

  def parallel_scan(self, params: dict, xp_TBG: Array, mask_TB: Array | None, carry: LRUCarry):
    """(final carry, ys_TBH) by the associative scan over complex h (module docstring).

    A padded step holds the state (a = 1, b = 0) and outputs zero; the final
    carry's y is the last valid step's, itself the linear recurrence
    y <- (1 - m_t) y + m_t y_t.
    """
    N = self.n
    xp_TBG = xp_TBG.astype(self.carry_dtype)
    l_re, l_im, gamma = self._lambda(params)
    gamma = expand_like(gamma, xp_TBG)
    bu_TBN = jax.lax.complex(gamma * xp_TBG[..., :N], gamma * xp_TBG[..., N:2 * N])
    a_TBN = jnp.broadcast_to(jax.lax.complex(l_re, l_im), bu_TBN.shape)
    if mask_TB is not None:
      m_TB1 = mask_TB[..., None]
      a_TBN = jnp.where(m_TB1, a_TBN, jnp.ones((), a_TBN.dtype))
      bu_TBN = jnp.where(m_TB1, bu_TBN, jnp.zeros((), bu_TBN.dtype))
    h_last, hs_TBN = linear_scan(a_TBN, bu_TBN, None, jax.lax.complex(carry.re, carry.im))
    ys_TBH = self._readout(params, jnp.real(hs_TBN), jnp.imag(hs_TBN), xp_TBG[..., 2 * N:])
    y_last = ys_TBH[-1]
    if mask_TB is not None:
      keep_TBH = jnp.broadcast_to(jnp.where(m_TB1, 0.0, 1.0), ys_TBH.shape).astype(ys_TBH.dtype)
      ys_TBH = jnp.where(m_TB1, ys_TBH, jnp.zeros((), ys_TBH.dtype))
      y_last, _ = linear_scan(keep_TBH, ys_TBH, None, carry.y)
    return LRUCarry(jnp.real(h_last), jnp.imag(h_last), y_last), ys_TBH

  def diagonal_jacobian(self, params: dict, xp: Array) -> Array:
    """|dh_t/dh_{t-1}| = |lambda| [..., N], the same at every step."""
    modulus = jnp.exp(-jnp.exp(params["nu_log"].astype(self.carry_dtype)))
    return jnp.broadcast_to(modulus, xp.shape[:-1] + modulus.shape)

