"""Recurrences with a hand-written backward pass: the weight gradients leave the backward scan.

Shape legend: B batch, T time, H hidden size, G gate width (num_gates * H).

Autodiff of ``lax.scan`` accumulates dW_h += h_{t-1}^T dgates_t inside the
backward loop: T small [H, B] x [B, G] matmuls, each followed by a read and a
write of the whole [H, G] accumulator. Here the backward scan computes only
what the recurrence needs (dgates_t and dh_{t-1} = dgates_t W_h^T) and emits
dgates_t; after the loop

    dW_h = sum_t h_{t-1}^T dgates_t            (one [H, T*B] x [T*B, G] matmul)

(the cuDNN/PyTorch recipe). Custom VJP, because autodiff cannot move a
reduction out of a loop. The forward saves the gate activations, so the
backward scan has no matmul but dgates_t W_h^T.

Each function takes the projected inputs xp_TBG = x W_x + b (time-major), an
optional mask_TB (True at valid steps; a padded step leaves the carry unchanged
and outputs zero, exactly as ``layers.unroll``'s plain scan) and the initial
carry, and returns (final carry, ys_TBH). Supported: LSTM without peepholes,
GRU with reset_after=True, Elman (tanh and relu), and minGRU / minLSTM, whose
linear recurrence h_t = a_t h_{t-1} + b_t has no matmul at all: its backward
pass is the same recurrence run backward in time (``_linear_bwd``). The plain scan of
``cell.step`` stays the reference; tests check values and gradients against it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from recurrent.cells import GRU, LSTM, Cell, Elman, LSTMCarry, MinGRU, MinLSTM
from recurrent.cells.base import Array, expand_like


def supports(cell: Cell) -> bool:
  """Whether ``cell`` has a fused recurrence here."""
  if isinstance(cell, LSTM):
    return not cell.peephole
  if isinstance(cell, GRU):
    return cell.reset_after
  return isinstance(cell, (Elman, MinGRU, MinLSTM))


def _masked(m_B, new, old):
  return new if m_B is None else jnp.where(m_B[:, None], new, old)


# ----------------------------------------------------------------------------- LSTM

@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lstm(unroll, W_h, xp_TBG, mask_TB, h0, c0):
  return _lstm_fwd(unroll, W_h, xp_TBG, mask_TB, h0, c0)[0]


def _lstm_fwd(unroll, W_h, xp_TBG, mask_TB, h0, c0):
  dtype = h0.dtype

  def body(carry, inputs):
    h, c = carry
    xp, m = inputs
    gates = (xp + h @ W_h).astype(dtype)
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
    c_new = f * c + i * g
    h_new = o * jnp.tanh(c_new)
    y = h_new if m is None else jnp.where(m[:, None], h_new, 0.0)
    acts = jnp.concatenate([i, f, g, o], axis=-1)
    return (_masked(m, h_new, h), _masked(m, c_new, c)), (y, h, c, acts)

  (hT, cT), (ys, h_prev, c_prev, acts) = jax.lax.scan(
      body, (h0, c0), (xp_TBG, mask_TB), unroll=unroll)
  return (hT, cT, ys), (W_h, jnp.zeros((), xp_TBG.dtype), mask_TB, h_prev, c_prev, acts)


def _lstm_bwd(unroll, res, cts):
  W_h, xp_like, mask_TB, h_prev, c_prev, acts = res
  dhT, dcT, dys = cts
  W_hT = W_h.T

  def body(carry, inputs):
    dh, dc = carry
    dy, c, a, m = inputs
    i, f, g, o = jnp.split(a, 4, axis=-1)
    dh_new = dh + dy
    dc_new = dc
    if m is not None:
      m1 = m[:, None]
      dh_new, dc_new = jnp.where(m1, dh_new, 0.0), jnp.where(m1, dc, 0.0)
    c_new = f * c + i * g
    tc = jnp.tanh(c_new)
    dc_tot = dc_new + dh_new * o * (1.0 - tc * tc)
    dgates = jnp.concatenate([
        dc_tot * g * i * (1.0 - i),
        dc_tot * c * f * (1.0 - f),
        dc_tot * i * (1.0 - g * g),
        dh_new * tc * o * (1.0 - o)], axis=-1)
    dh_prev = (dgates @ W_hT).astype(dh.dtype)
    dc_prev = dc_tot * f
    if m is not None:
      dh_prev = dh_prev + jnp.where(m1, 0.0, dh)
      dc_prev = dc_prev + jnp.where(m1, 0.0, dc)
    return (dh_prev, dc_prev), dgates

  (dh0, dc0), dgates_TBG = jax.lax.scan(
      body, (dhT, dcT), (dys, c_prev, acts, mask_TB), reverse=True, unroll=unroll)
  dW_h = jnp.einsum("tbh,tbg->hg", h_prev, dgates_TBG).astype(W_h.dtype)
  return dW_h, dgates_TBG.astype(xp_like.dtype), None, dh0, dc0


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


# ----------------------------------------------------------------------------- GRU

@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _gru(unroll, W_h, b_hn, xp_TBG, mask_TB, h0):
  return _gru_fwd(unroll, W_h, b_hn, xp_TBG, mask_TB, h0)[0]


def _gru_fwd(unroll, W_h, b_hn, xp_TBG, mask_TB, h0):
  dtype = h0.dtype

  def body(h, inputs):
    xp, m = inputs
    x_r, x_z, x_n = jnp.split(xp.astype(dtype), 3, axis=-1)
    h_r, h_z, h_n = jnp.split((h @ W_h).astype(dtype), 3, axis=-1)
    hn_b = h_n + expand_like(b_hn, h_n)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * hn_b)
    h_new = z * h + (1.0 - z) * n
    y = h_new if m is None else jnp.where(m[:, None], h_new, 0.0)
    acts = jnp.concatenate([r, z, n, hn_b], axis=-1)
    return _masked(m, h_new, h), (y, h, acts)

  hT, (ys, h_prev, acts) = jax.lax.scan(body, h0, (xp_TBG, mask_TB),
                                        unroll=unroll)
  return (hT, ys), (W_h, b_hn, jnp.zeros((), xp_TBG.dtype), mask_TB, h_prev, acts)


def _gru_bwd(unroll, res, cts):
  W_h, b_hn, xp_like, mask_TB, h_prev, acts = res
  dhT, dys = cts
  W_hT = W_h.T

  def body(dh, inputs):
    dy, h, a, m = inputs
    r, z, n, hn_b = jnp.split(a, 4, axis=-1)
    dh_new = dh + dy
    if m is not None:
      m1 = m[:, None]
      dh_new = jnp.where(m1, dh_new, 0.0)
    dn_pre = dh_new * (1.0 - z) * (1.0 - n * n)
    dr_pre = dn_pre * hn_b * r * (1.0 - r)
    dz_pre = dh_new * (h - n) * z * (1.0 - z)
    dhp = jnp.concatenate([dr_pre, dz_pre, dn_pre * r], axis=-1)
    dh_prev = (dhp @ W_hT).astype(dh.dtype) + dh_new * z
    if m is not None:
      dh_prev = dh_prev + jnp.where(m1, 0.0, dh)
    return dh_prev, (jnp.concatenate([dr_pre, dz_pre, dn_pre], axis=-1), dhp)

  dh0, (dxp_TBG, dhp_TBG) = jax.lax.scan(
      body, dhT, (dys, h_prev, acts, mask_TB), reverse=True, unroll=unroll)
  dW_h = jnp.einsum("tbh,tbg->hg", h_prev, dhp_TBG).astype(W_h.dtype)
  H = h_prev.shape[-1]
  db_hn = jnp.sum(dhp_TBG[..., 2 * H:], axis=(0, 1)).astype(b_hn.dtype)
  return dW_h, db_hn, dxp_TBG.astype(xp_like.dtype), None, dh0


_gru.defvjp(_gru_fwd, _gru_bwd)


# ----------------------------------------------------------------------------- Elman

@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _elman(activation, unroll, W_h, xp_TBG, mask_TB, h0):
  return _elman_fwd(activation, unroll, W_h, xp_TBG, mask_TB, h0)[0]


def _elman_fwd(activation, unroll, W_h, xp_TBG, mask_TB, h0):
  g = jnp.tanh if activation == "tanh" else jax.nn.relu

  def body(h, inputs):
    xp, m = inputs
    h_new = g((xp + h @ W_h).astype(h.dtype))
    y = h_new if m is None else jnp.where(m[:, None], h_new, 0.0)
    return _masked(m, h_new, h), (y, h, h_new)

  hT, (ys, h_prev, h_new) = jax.lax.scan(body, h0, (xp_TBG, mask_TB),
                                         unroll=unroll)
  return (hT, ys), (W_h, jnp.zeros((), xp_TBG.dtype), mask_TB, h_prev, h_new)


def _elman_bwd(activation, unroll, res, cts):
  W_h, xp_like, mask_TB, h_prev, h_new_TBH = res
  dhT, dys = cts
  W_hT = W_h.T

  def body(dh, inputs):
    dy, h_new, m = inputs
    dh_new = dh + dy
    if m is not None:
      dh_new = jnp.where(m[:, None], dh_new, 0.0)
    if activation == "tanh":
      dpre = dh_new * (1.0 - h_new * h_new)
    else:
      dpre = jnp.where(h_new > 0.0, dh_new, 0.0)
    dh_prev = (dpre @ W_hT).astype(dh.dtype)
    if m is not None:
      dh_prev = dh_prev + jnp.where(m[:, None], 0.0, dh)
    return dh_prev, dpre

  dh0, dpre_TBH = jax.lax.scan(body, dhT, (dys, h_new_TBH, mask_TB), reverse=True,
                               unroll=unroll)
  dW_h = jnp.einsum("tbh,tbg->hg", h_prev, dpre_TBH).astype(W_h.dtype)
  return dW_h, dpre_TBH.astype(xp_like.dtype), None, dh0


_elman.defvjp(_elman_fwd, _elman_bwd)


# ----------------------------------------------------------------------------- minGRU / minLSTM

@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _linear(unroll, a_TBH, b_TBH, h0):
  return _linear_fwd(unroll, a_TBH, b_TBH, h0)[0]


def _linear_fwd(unroll, a_TBH, b_TBH, h0):
  def body(h, ab):
    h = ab[0] * h + ab[1]
    return h, h

  _, hs_TBH = jax.lax.scan(body, h0, (a_TBH, b_TBH), unroll=unroll)
  return hs_TBH, (a_TBH, hs_TBH, h0)


def _linear_bwd(unroll, res, dhs_TBH):
  """G_t = dhs_t + a_{t+1} G_{t+1} backward in time; da_t = G_t h_{t-1}, db_t = G_t, dh_0 = a_1 G_1."""
  a_TBH, hs_TBH, h0 = res

  def body(G_next, inputs):
    a_next, dh = inputs
    G = dh + a_next * G_next
    return G, G

  a_next_TBH = jnp.concatenate([a_TBH[1:], jnp.zeros_like(a_TBH[:1])], 0)
  _, G_TBH = jax.lax.scan(body, jnp.zeros_like(h0), (a_next_TBH, dhs_TBH), reverse=True,
                          unroll=unroll)
  h_prev_TBH = jnp.concatenate([h0[None], hs_TBH[:-1]], 0)
  return G_TBH * h_prev_TBH, G_TBH, a_TBH[0] * G_TBH[0]


_linear.defvjp(_linear_fwd, _linear_bwd)


def _minimal(cell, unroll, xp_TBG, mask_TB, h0):
  """The gates of every step at once (no h in them), then the sequential linear recurrence."""
  a_TBH, b_TBH = cell.coefficients(xp_TBG.astype(cell.carry_dtype))
  if mask_TB is not None:                  # a padded step: h_t = 1 * h_{t-1} + 0
    m = mask_TB[..., None]
    a_TBH, b_TBH = jnp.where(m, a_TBH, 1.0), jnp.where(m, b_TBH, 0.0)
  hs_TBH = _linear(unroll, a_TBH, b_TBH, h0)
  ys_TBH = hs_TBH if mask_TB is None else jnp.where(mask_TB[..., None], hs_TBH, 0.0)
  return hs_TBH[-1], ys_TBH


# ----------------------------------------------------------------------------- entry point

def recurrence(cell: Cell, params: dict, xp_TBG: Array, mask_TB: Array | None, carry,
               unroll: int = 1):
  """(final carry, ys_TBH) of ``cell`` over projected inputs, with the fused backward pass."""
  if not supports(cell):
    raise ValueError(f"impl: 'fused' does not support the cell {cell!r}; use impl='scan'")
  if isinstance(cell, LSTM):
    hT, cT, ys = _lstm(unroll, params["W_h"], xp_TBG, mask_TB, carry.h, carry.c)
    return LSTMCarry(h=hT, c=cT), ys
  if isinstance(cell, (MinGRU, MinLSTM)):
    return _minimal(cell, unroll, xp_TBG, mask_TB, carry)
  if isinstance(cell, GRU):
    return _gru(unroll, params["W_h"], params["b_hn"], xp_TBG, mask_TB, carry)
  return _elman(cell.activation, unroll, params["W_h"], xp_TBG, mask_TB, carry)
