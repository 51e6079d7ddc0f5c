"""Gated recurrent unit (Cho et al. 2014), in both of its forms.

With the fused projections [r, z, n] (gate order r, z, n; PyTorch's):

    r_t = sigma(x_t W_xr + h_{t-1} W_hr + b_r)               reset gate
    z_t = sigma(x_t W_xz + h_{t-1} W_hz + b_z)               update gate
    reset_after=False (Cho 2014, Chung 2014, seed 003):
      n_t = tanh(x_t W_xn + b_n + (r_t * h_{t-1}) W_hn)
    reset_after=True (cuDNN, PyTorch, Keras, Flax):
      n_t = tanh(x_t W_xn + b_n + r_t * (h_{t-1} W_hn + b_hn))
    h_t = z_t * h_{t-1} + (1 - z_t) * n_t,     y_t = h_t

Update-gate convention: z_t is the fraction of the old state *kept*, as in Cho
et al. 2014, PyTorch and Flax. Chung et al. 2014 and seed 001/003 write
h_t = (1 - u_t) h_{t-1} + u_t h~_t with u_t the fraction *updated*: u = 1 - z,
i.e. their (W_u, U_u, b_u) are our (-W_hz, -W_xz, -b_z).

Chrono initialisation (``chrono=T_max`` > 0; Tallec & Ollivier 2018): the
update-gate bias b_z ~ log(U[1, T_max - 1]) per unit. Their principle: a
unit that keeps the fraction z = sigma(b_z) of its state per step has the
memory time 1 / (1 - z) = 1 + e^{b_z}, uniform up to T_max. With z the
fraction kept (our convention) the sign is +; in Chung's convention
(u = 1 - z) it is b_u = -log(U[1, T_max - 1]). (The paper writes the
recipe out for the LSTM; this is the same reasoning applied to the GRU's
update gate.)

Layout: W_x [D, 3H], W_h [H, 3H], b [3H] on the input side, and b_hn [H], the
recurrent candidate bias that only the reset_after form can tell apart from
b_n (it is kept, at zero, in both forms so that their parameters have the same
structure). PyTorch's ``nn.GRU`` maps as W_x = weight_ih_l0.T,
W_h = weight_hh_l0.T, b = bias_ih_l0 + [bias_hh_r, bias_hh_z, 0],
b_hn = bias_hh_n. Flax's ``GRUCell``: W_x = [ir, iz, in] kernels, b = their
biases, W_h = [hr, hz, hn] kernels, b_hn = hn's bias.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from recurrent.cells.base import Array, Cell, check_chrono, chrono_bias, expand_like, sigmoid


@dataclasses.dataclass(frozen=True)
class GRU(Cell):
  """GRU cell; ``reset_after`` picks the form (default True, the cuDNN form)."""

  reset_after: bool = True
  chrono: int = 0              # > 0: chrono init of the update gate with this T_max

  num_gates = 3

  def __post_init__(self):
    super().__post_init__()
    check_chrono(self.chrono)

  def init(self, key: Array) -> dict:
    k_w, k_b = jax.random.split(key)
    w_x, w_h, b = self.init_kernels(k_w)
    if self.chrono:
      H = self.hidden_size
      b = b.at[H:2 * H].add(chrono_bias(jax.random.fold_in(key, 0xc4), self.chrono, H, b.dtype))
    b_hn = self.bias_init(k_b, (self.hidden_size,), self.param_dtype)
    return {"W_x": w_x, "W_h": w_h, "b": b, "b_hn": b_hn}

  def recurrent_kernel(self, params: dict) -> Array:
    """All of W_h for reset_after; only [W_hr, W_hz] before the reset (W_hn multiplies r * h)."""
    return params["W_h"] if self.reset_after else params["W_h"][:, :2 * self.hidden_size]

  def post(self, params: dict, carry: Array, xp: Array, u: Array) -> tuple[Array, Array]:
    """One GRU step from xp_t = x_t W_x + b and u_t = h_{t-1} W_h (module docstring)."""
    H = self.hidden_size
    h_prev = carry
    xp = xp.astype(self.carry_dtype)
    x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
    b_hn = expand_like(params["b_hn"], h_prev)
    u = u.astype(self.carry_dtype)
    h_r, h_z = u[..., :H], u[..., H:2 * H]
    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    if self.reset_after:
      n = jnp.tanh(x_n + r * (u[..., 2 * H:] + b_hn))
    else:
      n = jnp.tanh(x_n + ((r * h_prev) @ params["W_h"][:, 2 * H:] + b_hn).astype(self.carry_dtype))
    h = z * h_prev + (1.0 - z) * n
    return h, h
