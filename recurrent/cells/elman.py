"""The Elman (vanilla) RNN.

    h_t = g(x_t W_x + h_{t-1} W_h + b),     y_t = h_t

with g = tanh (default) or relu. Seed 001 writes it a<t> = g(W_aa a<t-1> +
W_ax x<t> + b_a); our W_x is W_ax transposed and W_h is W_aa transposed.
PyTorch's ``nn.RNN`` has W_x = weight_ih_l0.T, W_h = weight_hh_l0.T and
b = bias_ih_l0 + bias_hh_l0.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from recurrent.cells.base import Array, Cell

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


@dataclasses.dataclass(frozen=True)
class Elman(Cell):
  """Elman RNN cell. Parameters: W_x [D, H], W_h [H, H], b [H]."""

  activation: str = "tanh"

  num_gates = 1
  post_reads_sum = True

  def __post_init__(self):
    super().__post_init__()
    if self.activation not in ACTIVATIONS:
      raise ValueError(
          f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")

  def init(self, key: Array) -> dict:
    w_x, w_h, b = self.init_kernels(key)
    return {"W_x": w_x, "W_h": w_h, "b": b}

  def post(self, params: dict, carry: Array, xp: Array, u: Array) -> tuple[Array, Array]:
    """h_t = g(xp_t + u_t), where xp_t = x_t W_x + b and u_t = h_{t-1} W_h."""
    del params, carry
    h = ACTIVATIONS[self.activation]((xp + u).astype(self.carry_dtype))
    return h, h
