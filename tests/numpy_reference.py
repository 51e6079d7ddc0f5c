"""Cells written again in NumPy, straight from the equations, as an independent reference.

Nothing here imports ``recurrent``; the weights are plain arrays with the
layout documented in the cell modules: W_x [D, nH], W_h [H, nH], b [nH].
"""

import numpy as np


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def elman_step(p, h, x, activation="tanh"):
  pre = x @ p["W_x"] + h @ p["W_h"] + p["b"]
  return np.tanh(pre) if activation == "tanh" else np.maximum(pre, 0.0)


def lstm_step(p, h, c, x, peephole=False):
  H = h.shape[-1]
  a = x @ p["W_x"] + h @ p["W_h"] + p["b"]
  a_i, a_f, a_g, a_o = (a[..., k * H:(k + 1) * H] for k in range(4))
  if peephole:
    a_i = a_i + p["p_i"] * c
    a_f = a_f + p["p_f"] * c
  i, f, g = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g)
  c_new = f * c + i * g
  if peephole:
    a_o = a_o + p["p_o"] * c_new
  h_new = sigmoid(a_o) * np.tanh(c_new)
  return h_new, c_new


def gru_step(p, h, x, reset_after=True):
  H = h.shape[-1]
  Wx, Wh, b = p["W_x"], p["W_h"], p["b"]
  W_xr, W_xz, W_xn = Wx[:, :H], Wx[:, H:2 * H], Wx[:, 2 * H:]
  W_hr, W_hz, W_hn = Wh[:, :H], Wh[:, H:2 * H], Wh[:, 2 * H:]
  b_r, b_z, b_n = b[:H], b[H:2 * H], b[2 * H:]
  r = sigmoid(x @ W_xr + h @ W_hr + b_r)
  z = sigmoid(x @ W_xz + h @ W_hz + b_z)
  if reset_after:
    n = np.tanh(x @ W_xn + b_n + r * (h @ W_hn + p["b_hn"]))
  else:
    n = np.tanh(x @ W_xn + b_n + (r * h) @ W_hn + p["b_hn"])
  return z * h + (1.0 - z) * n


def run(step, xs, state):
  """Applies step(state, x_t) -> (state, y_t) over the time axis 1 of xs [B, T, D]."""
  ys = []
  for t in range(xs.shape[1]):
    state, y = step(state, xs[:, t])
    ys.append(y)
  return state, np.stack(ys, axis=1)
