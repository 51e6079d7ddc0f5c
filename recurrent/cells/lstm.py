"""Long short-term memory (Hochreiter & Schmidhuber 1997; forget gate of Gers et al. 2000).

    [i, f, g, o] = x_t W_x + h_{t-1} W_h + b              (fused, gate order i, f, g, o)
    i_t = sigma(i + p_i * c_{t-1})                          input gate
    f_t = sigma(f + p_f * c_{t-1})                          forget gate
    g_t = tanh(g)                                           candidate
    c_t = f_t * c_{t-1} + i_t * g_t
    o_t = sigma(o + p_o * c_t)                              output gate
    h_t = o_t * tanh(c_t),      y_t = h_t

The peephole terms p_* (elementwise, Graves 2013; Gers & Schmidhuber 2000)
are present only with ``peephole=True``; the output gate looks at the *new*
cell c_t, the input and forget gates at c_{t-1}.

The forget-gate block of b starts at ``forget_bias`` (default 1.0, Jozefowicz
et al. 2015) so that a fresh LSTM remembers by default. ``chrono=T_max`` (> 0)
replaces that with the chrono initialisation of Tallec & Ollivier (2018):
b_f ~ log(U[1, T_max - 1]) per unit and b_i = -b_f, so that the units' memory
times 1 / (1 - sigma(b_f)) spread up to about T_max steps
(``recurrent.cells.base.chrono_bias``); ``forget_bias`` must then be left at 1.

Layout: the gate order is PyTorch's (i, f, g, o); PyTorch's ``nn.LSTM`` maps
as W_x = weight_ih_l0.T, W_h = weight_hh_l0.T, b = bias_ih_l0 + bias_hh_l0.
Flax's ``LSTMCell`` keeps one Dense per gate (ii, if, ig, io without bias;
hi, hf, hg, ho with bias) and its carry as (c, h); ours is LSTMCarry(h, c).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from recurrent.cells.base import (Array, Cell, check_chrono, chrono_bias, expand_like,
                                  gate_activations, sigmoid)


class LSTMCarry(NamedTuple):
  """The LSTM state: h [.., H] (the output) and c [.., H] (the memory cell)."""

  h: Array
  c: Array


@dataclasses.dataclass(frozen=True)
class LSTM(Cell):
  """LSTM cell. Parameters: W_x [D, 4H], W_h [H, 4H], b [4H] (+ p_i, p_f, p_o [H] with peepholes)."""

  forget_bias: float = 1.0
  peephole: bool = False
  chrono: int = 0              # > 0: chrono init with this T_max (module docstring)

  num_gates = 4
  post_reads_sum = True

  def __post_init__(self):
    super().__post_init__()
    check_chrono(self.chrono)
    if self.chrono and self.forget_bias != 1.0:
      raise ValueError(f"forget_bias: chrono={self.chrono} sets the forget-gate bias itself; leave "
                       f"forget_bias at 1.0, got {self.forget_bias!r}")

  def init(self, key: Array) -> dict:
    k_w, k_p = jax.random.split(key)
    w_x, w_h, b = self.init_kernels(k_w)
    H = self.hidden_size
    if self.chrono:
      b_f = chrono_bias(jax.random.fold_in(key, 0xc4), self.chrono, H, b.dtype)
      b = b.at[H:2 * H].add(b_f).at[:H].add(-b_f)
    else:
      b = b.at[H:2 * H].add(jnp.asarray(self.forget_bias, b.dtype))
    params = {"W_x": w_x, "W_h": w_h, "b": b}
    if self.peephole:
      for name in ("p_i", "p_f", "p_o"):
        params[name] = jnp.zeros((H,), self.param_dtype)
    return params

  def initial_carry(self, batch_shape: tuple[int, ...] = ()) -> LSTMCarry:
    zeros = jnp.zeros((*batch_shape, self.hidden_size), self.carry_dtype)
    return LSTMCarry(h=zeros, c=zeros)

  def hidden(self, carry: LSTMCarry) -> Array:
    return carry.h

  def post(self, params: dict, carry: LSTMCarry, xp: Array, u: Array) -> tuple[LSTMCarry, Array]:
    """One LSTM step from xp_t = x_t W_x + b and u_t = h_{t-1} W_h (see the module docstring).

    The four gates' activations come from one call over the whole [.., 4H]
    pre-activation (``gate_activations``: one tanh when nothing differentiates
    through it, the textbook sigma/tanh per block when something does).
    Peepholes add p_i c_{t-1} and p_f c_{t-1} to the i and f blocks first; the
    output gate's p_o c_t needs c_t, so with peepholes o is a sigma of its own (``sigmoid``, the same
    tanh form).
    """
    c_prev = carry.c
    gates = (xp + u).astype(self.carry_dtype)
    if self.peephole:
      zero = jnp.zeros_like(c_prev)
      gates = gates + jnp.concatenate([expand_like(params["p_i"], c_prev) * c_prev,
                                       expand_like(params["p_f"], c_prev) * c_prev, zero, zero], -1)
    i, f, g, o = jnp.split(gate_activations(gates, (True, True, False, True)), 4, axis=-1)
    c = f * c_prev + i * g
    if self.peephole:
      o = sigmoid(gates[..., 3 * c.shape[-1]:] + expand_like(params["p_o"], c) * c)
    h = o * jnp.tanh(c)
    return LSTMCarry(h=h, c=c), h
