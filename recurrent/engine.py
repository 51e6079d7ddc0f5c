"""One recurrence for every cell, with the recurrent weight's gradient taken out of the backward loop.

Shape legend: B batch, T time, H hidden size, G width of the recurrent matmul.

A cell states its step in two parts, split at the one O(H^2) operation:

    u_t = hidden(c_{t-1}) @ W                         W = cell.recurrent_kernel(params)
    c_t, y_t = cell.post(params, c_{t-1}, xp_t, u_t)  gates, nonlinearities, everything else

(``Cell.step`` is exactly this composition, so the plain scan and this engine
run the same equations: there is no second copy of any cell.)

Autodiff of ``lax.scan`` differentiates u_t = h_{t-1} W inside the backward
loop: dW += h_{t-1}^T du_t, T small [H, B] x [B, G] matmuls, each reading and
writing the whole [H, G] accumulator. Here the recurrence is a ``custom_jvp``
whose tangent rule feeds W's tangent in from outside the loop,

    dU_TBG = H_prev_TBH @ dW                       (one matmul, before the loop)
    dc_t, dy_t = jvp(post)(dc_{t-1}, dxp_t, du_t = hidden(dc_{t-1}) @ W + dU_t)

``post`` is linearised once per step in the forward scan and its residuals
(the saved activations) leave that scan, so the tangent scan holds only the
linear part. Reverse mode, which JAX gets by transposing that tangent scan,
then ends with

    dW = sum_t h_{t-1}^T du_t                      (one [H, T*B] x [T*B, G] matmul)

(the cuDNN/PyTorch recipe) and its backward loop holds only du_t @ W^T and the
elementwise work. Because it is a JVP rule, forward-mode autodiff (``jax.jvp``,
``jax.jacfwd``) and higher derivatives work through it; the rule is plain JAX.

What the forward scan saves per step (memory traffic is most of a step's
non-matmul time on a CPU): ``post`` runs under ``jax.checkpoint`` with a
policy that keeps only the outputs of transcendental functions (sigmoid,
tanh, exp, ...), so adds, products and the derivatives built from them
(s (1 - s), 1 - tanh^2) are recomputed in the backward loop from those; a
residual that is xp_t, h_{t-1} or a parameter is read where it already is
instead of being saved again. For a cell whose ``post`` reads xp and u only
through xp + u (``Cell.post_reads_sum``: LSTM, Elman), dxp_t and W's part of
du_t enter the tangent scan as one input, so the backward loop writes one
cotangent per step where it would write two equal ones. LSTM: 8 [B, H]
arrays written per step by the forward scan (13 before, plus duplicates) and
one [B, 4H] by the backward (two before).

Which parameters ``post`` reads is found by tracing it once (``_post_param_keys``):
only those enter the loop, so a cell whose ``post`` reads no parameter (an LSTM
without peepholes) carries no parameter cotangent through the backward loop.

Masking: ``mask_TB`` (True at valid steps); a padded step leaves the carry as
it was and outputs zero.

Speed: docs/PERFORMANCE.md ("The engine against the hand-written backward").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from recurrent.cells.base import Array, Cell, materialised_transpose, matmul_transposed_lhs


def _masked(m_B, new, old, y_BH):
  """A padded step (m_B False) keeps the carry ``old`` and outputs zero (values and tangents alike)."""
  if m_B is None:
    return new, y_BH
  m_B1 = m_B[:, None]
  new = jax.tree.map(lambda n, o: jnp.where(m_B1, n, o), new, old)
  return new, jnp.where(m_B1, y_BH, jnp.zeros_like(y_BH))


def _times_transposed(h_BH: Array, W_T: Array) -> Array:
  """h @ W, given W^T [G, H]."""
  return jax.lax.dot_general(h_BH, W_T, (((h_BH.ndim - 1,), (1,)), ((), ())))


def _matmul(cell: Cell, W, carry):
  return None if W is None else cell.hidden(carry) @ W


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _recurrence(cell, unroll, W, params, xp_TBG, mask_TB, carry0):
  def body(carry, inputs):
    xp_BG, m_B = inputs
    new, y_BH = cell.post(params, carry, xp_BG, _matmul(cell, W, carry))
    return _masked(m_B, new, carry, y_BH)

  return jax.lax.scan(body, carry0, (xp_TBG, mask_TB), unroll=unroll)


def _hoist_residuals(linear_fn, example_args):
  """(f, residuals): ``linear_fn`` with the values it closes over made arguments.

  ``f(*args, residuals)`` == ``linear_fn(*args)``. The residuals (post's
  saved activations, masks included) can then leave the scan that made them
  and be sliced per step by another scan.
  """
  closed, out_shape = jax.make_jaxpr(linear_fn, return_shape=True)(*example_args)
  out_tree = jax.tree.structure(out_shape)
  jaxpr = closed.jaxpr

  def f(*args_and_residuals):
    *args, residuals = args_and_residuals
    flat = jax.core.eval_jaxpr(jaxpr, list(residuals), *jax.tree.leaves(args))
    return jax.tree.unflatten(out_tree, flat)

  return f, tuple(closed.consts)


# Primitives whose outputs the forward scan keeps for the backward loop (``_post_policy``).
_TRANSCENDENTAL = frozenset({"logistic", "tanh", "exp", "log", "log1p", "expm1", "sin", "cos",
                             "sqrt", "rsqrt", "erf", "pow"})


def _post_policy(prim, *args, **params) -> bool:
  """Save a transcendental's output; recompute the rest (adds, products, slices) when needed."""
  del args, params
  return prim.name in _TRANSCENDENTAL


@_recurrence.defjvp
def _recurrence_jvp(cell, unroll, primals, tangents):
  W, params, xp_TBG, mask_TB, carry0 = primals
  dW, dparams, dxp_TBG, _, dcarry0 = tangents
  linear = []  # post's linearisation, the same function at every step (traced once)
  post = jax.checkpoint(cell.post, prevent_cse=False, policy=_post_policy)
  param_leaves = jax.tree.leaves(params)

  def body(carry, inputs):
    xp_BG, m_B = inputs
    h_BH = cell.hidden(carry)
    u_BG = _matmul(cell, W, carry)
    (new, y_BH), post_lin = jax.linearize(post, params, carry, xp_BG, u_BG)
    f, residuals = _hoist_residuals(post_lin, (dparams, carry, xp_BG, u_BG))
    # A residual that is xp_t, h_{t-1} or a parameter is read from outside the scan, not saved.
    known = {id(xp_BG): 0, id(h_BH): 1, **{id(v): 2 + i for i, v in enumerate(param_leaves)}}
    where = tuple(known.get(id(r), -1) for r in residuals)
    linear.append((f, where))
    new, y_BH = _masked(m_B, new, carry, y_BH)
    return new, (y_BH, h_BH, tuple(r for r, w in zip(residuals, where) if w < 0))

  carryT, (ys_TBH, H_prev, saved_T) = jax.lax.scan(body, carry0, (xp_TBG, mask_TB),
                                                   unroll=unroll)
  post_lin, where = linear[0]
  # the part of du_t from dW, for every step at once, as (H_prev^T)^T dW with H_prev^T materialised:
  # its transpose, dW = H_prev^T du, is then a plain matmul (``cells.base.materialised_transpose``)
  dU_TBG = None if W is None else matmul_transposed_lhs(
      materialised_transpose(H_prev.reshape(-1, H_prev.shape[-1])), dW).reshape(
          H_prev.shape[:-1] + (dW.shape[-1],))
  if W is not None and cell.post_reads_sum and dxp_TBG.dtype == dU_TBG.dtype:
    # post reads xp + u only, so its linearisation does too: dxp_t + dU_t enters as one input,
    # and the backward loop writes one cotangent per step for both (not two equal ones).
    dxp_TBG, dU_TBG = dxp_TBG + dU_TBG, None
  # dh @ W written as a contraction with W^T: its transpose, in the backward loop, is then a
  # plain du @ W^T with W^T laid out once here (measured faster on XLA:CPU than transposing W
  # inside the loop).
  W_T = None if W is None else W.T

  def tangent_body(dcarry, inputs):
    m_B, dxp_BG, dU_BG, xp_BG, h_BH, saved = inputs
    du_BG = None if W is None else _times_transposed(cell.hidden(dcarry), W_T)
    if dU_BG is not None:
      du_BG = du_BG + dU_BG
    it = iter(saved)
    residuals = [next(it) if w < 0 else xp_BG if w == 0 else h_BH if w == 1 else
                 param_leaves[w - 2] for w in where]
    dnew, dy_BH = post_lin(dparams, dcarry, dxp_BG, du_BG, residuals)
    return _masked(m_B, dnew, dcarry, dy_BH)

  dcarryT, dys_TBH = jax.lax.scan(
      tangent_body, dcarry0, (mask_TB, dxp_TBG, dU_TBG, xp_TBG, H_prev, saved_T), unroll=unroll)
  return (carryT, ys_TBH), (dcarryT, dys_TBH)


def _post_param_keys(cell: Cell, params: dict, carry, xp_BG: Array, u_BG) -> tuple[str, ...]:
  """The names of the parameters ``cell.post`` reads, found by tracing it once (abstractly)."""
  names = sorted(params)
  def post(values, carry, xp, u):
    return cell.post(dict(zip(names, values)), carry, xp, u)
  closed = jax.make_jaxpr(post)([params[k] for k in names], carry, xp_BG, u_BG)
  jaxpr = closed.jaxpr
  used = {id(v) for eqn in jaxpr.eqns for v in eqn.invars} | {id(v) for v in jaxpr.outvars}
  return tuple(k for k, v in zip(names, jaxpr.invars[:len(names)]) if id(v) in used)


def recurrence(cell: Cell, params: dict, xp_TBG: Array, mask_TB: Array | None, carry0,
               unroll: int = 1):
  """(final carry, ys_TBH) of ``cell`` over projected inputs xp_TBG (time-major)."""
  W = cell.recurrent_kernel(params)
  u_BG = None if W is None else jax.eval_shape(functools.partial(_matmul, cell), W, carry0)
  keys = _post_param_keys(cell, params, carry0,
                          jax.ShapeDtypeStruct(xp_TBG.shape[1:], xp_TBG.dtype), u_BG)
  return _recurrence(cell, unroll, W, {k: params[k] for k in keys}, xp_TBG, mask_TB, carry0)
