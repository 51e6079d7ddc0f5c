"""LRU (Orvieto et al. 2023) and RG-LRU (De et al. 2024): NumPy references written from the papers'
equations (float64, complex arithmetic for the LRU), the associative and the sequential forms equal
in values and gradients, padding, initialisation as the papers state it, and the diagonal Jacobian
against autodiff.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from recurrent import make_cell, unroll
from recurrent.cells import LRUCarry

B, T, D, H, N = 3, 9, 4, 5, 6
LENGTHS = np.array([9, 4, 0])


def np_lru(p, xs, h0, y0):
  """Orvieto et al. 2023, eq. (LRU): h_t = lambda h_{t-1} + gamma (B x_t), y_t = Re(C h_t) + D x_t.

  Written with the paper's matrices: B [N, D] complex, C [H, N] complex, D [H, D_in] (our layout
  stores their transposes in W_x, C_re, C_im).
  """
  n = p["nu_log"].size
  lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
  gamma = np.exp(p["gamma_log"])
  Bm = (p["W_x"][:, :n] + 1j * p["W_x"][:, n:2 * n]).T
  Dm = p["W_x"][:, 2 * n:].T
  Cm = (p["C_re"] + 1j * p["C_im"]).T
  h, ys = h0, []
  for t in range(xs.shape[1]):
    h = lam * h + gamma * (xs[:, t] @ Bm.T)
    ys.append((h @ Cm.T).real + xs[:, t] @ Dm.T)
  return h, np.stack(ys, 1)


def np_rg_lru(p, xs, h, c=8.0):
  """De et al. 2024, Section 2.4, eqs. (1)-(4), with the gates and the value read from x_t."""
  sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
  Hh = p["Lambda"].size
  W, b = p["W_x"], p["b"]
  a = sig(p["Lambda"])
  ys = []
  for t in range(xs.shape[1]):
    x = xs[:, t]
    r = sig(x @ W[:, :Hh] + b[:Hh])
    i = sig(x @ W[:, Hh:2 * Hh] + b[Hh:2 * Hh])
    v = x @ W[:, 2 * Hh:] + b[2 * Hh:]
    a_t = a ** (c * r)
    h = a_t * h + np.sqrt(1.0 - a_t ** 2) * (i * v)
    ys.append(h)
  return h, np.stack(ys, 1)


def perturbed(params, seed=7, scale=0.3):
  """The initial parameters moved off their initial values (biases non-zero, phases mixed)."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [l + scale * jax.random.normal(k, l.shape, l.dtype)
                                   for l, k in zip(leaves, keys)])


def f64(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def initial(name, cell, seed=2):
  r = np.random.default_rng(seed)
  if name == "lru":
    return LRUCarry(*(jnp.asarray(r.normal(size=(B, n)), jnp.float32) for n in (N, N, H)))
  return jnp.asarray(r.normal(size=(B, H)), jnp.float32)


def reference(name, params, xs, carry):
  p, x = f64(params), np.asarray(xs, np.float64)
  if name == "lru":
    h, y = np_lru(p, x, np.asarray(carry.re, np.float64) + 1j * np.asarray(carry.im, np.float64),
                  None)
    return (h.real, h.imag, y[:, -1]), y
  h, y = np_rg_lru(p, x, np.asarray(carry, np.float64))
  return (h,), y


def make(name, **kw):
  return make_cell(name, D, H, **({"state_size": N} if name == "lru" else {}), **kw)


@pytest.mark.parametrize("name", ["lru", "rg_lru"])
def test_every_form_equals_the_numpy_reference(name):
  cell = make(name)
  params = perturbed(cell.init(jax.random.key(0)))
  xs = 2.0 * jax.random.normal(jax.random.key(1), (B, T, D))
  carry0 = initial(name, cell)
  want_final, want_y = reference(name, params, xs, carry0)
  for impl in ("associative", "hoisted", "scan"):
    carry, y = jax.jit(lambda p, x, c: unroll(cell, p, x, initial_carry=c, impl=impl))(
        params, xs, carry0)
    np.testing.assert_allclose(y, want_y, rtol=1e-4, atol=1e-5, err_msg=impl)
    for got, want in zip(jax.tree.leaves(carry), want_final):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=impl)


@pytest.mark.parametrize("name,reverse", [
    ("lru", False), pytest.param("rg_lru", False, marks=pytest.mark.slow),
    pytest.param("lru", True, marks=pytest.mark.slow),
    pytest.param("rg_lru", True, marks=pytest.mark.slow)])
def test_associative_and_sequential_gradients_equal_with_padding(name, reverse):
  cell = make(name)
  params = perturbed(cell.init(jax.random.key(0)))
  xs = 2.0 * jax.random.normal(jax.random.key(1), (B, T, D))
  w = jax.random.normal(jax.random.key(3), (B, T, H))
  carry0 = initial(name, cell)

  def loss(p, x, c0, impl, reverse):
    carry, y = unroll(cell, p, x, LENGTHS, initial_carry=c0, reverse=reverse, impl=impl)
    return jnp.sum(y * w) + sum(jnp.sum(jnp.sin(l)) for l in jax.tree.leaves(carry))

  grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)), static_argnums=(3, 4))
  ref = grad(params, xs, carry0, "scan", reverse)
  for impl in ("associative", "hoisted"):
    got = grad(params, xs, carry0, impl, reverse)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5), ref, got)


@pytest.mark.parametrize("name", ["lru", pytest.param("rg_lru", marks=pytest.mark.slow)])
def test_padded_steps_hold_the_state_and_output_zero(name):
  cell = make(name)
  params = perturbed(cell.init(jax.random.key(0)))
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  garbage = jnp.where((np.arange(T)[None, :] < LENGTHS[:, None])[..., None], xs, 1e3)
  carry, y = jax.jit(lambda p, x: unroll(cell, p, x, LENGTHS, impl="associative"))(params, garbage)
  for b, L in enumerate(LENGTHS):
    c_b, _ = unroll(cell, params, xs[b:b + 1, :L], impl="scan")   # trimmed, sequential
    jax.tree.map(lambda got, want: np.testing.assert_allclose(got[b], want[0], rtol=1e-5,
                                                              atol=1e-6), carry, c_b)
    np.testing.assert_array_equal(y[b, L:], 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lru", "rg_lru"])
def test_sequential_gradients_match_float64_finite_differences(name):
  with jax.enable_x64(True):
    cell = make(name, param_dtype=jnp.float64)
    params = perturbed(cell.init(jax.random.key(0)))
    xs = jax.random.normal(jax.random.key(1), (2, 6, D), jnp.float64)

    def loss(p, x, impl):
      carry, y = unroll(cell, p, x, impl=impl)
      return jnp.sum(jnp.sin(y)) + jnp.sum(jnp.cos(cell.hidden(carry)))

    # the associative form's gradients equal these (the test above), so one form suffices here
    check_grads(jax.jit(lambda p, x: loss(p, x, "hoisted")), (params, xs), order=1,
                modes=("rev",), eps=1e-6, atol=1e-6, rtol=1e-6)


def test_lru_initialisation_follows_the_paper():
  cell = make_cell("lru", 3, 8, state_size=2000, r_min=0.4, r_max=0.9, max_phase=1.0)
  p = cell.init(jax.random.key(0))
  modulus = np.exp(-np.exp(np.asarray(p["nu_log"], np.float64)))
  phase = np.exp(np.asarray(p["theta_log"], np.float64))
  assert modulus.min() >= 0.4 - 1e-6 and modulus.max() <= 0.9 + 1e-6
  # uniform on the ring by area: |lambda|^2 ~ U[r_min^2, r_max^2], so its mean is their midpoint
  assert abs(np.mean(modulus ** 2) - (0.16 + 0.81) / 2) < 0.015
  assert phase.min() >= 0.0 and phase.max() <= 1.0 and abs(phase.mean() - 0.5) < 0.03
  np.testing.assert_allclose(np.exp(np.asarray(p["gamma_log"], np.float64)),
                             np.sqrt(1 - modulus ** 2), rtol=1e-5)
  # B: each part N(0, 1/(2 D)); C: N(0, 1/N)
  assert abs(np.var(np.asarray(p["W_x"][:, :4000])) - 1 / 6) < 0.01
  assert abs(np.var(np.asarray(p["C_re"])) * 2000 - 1.0) < 0.05


def test_rg_lru_initialisation_puts_a_to_the_c_uniform_in_the_papers_range():
  cell = make_cell("rg_lru", 3, 4000)
  lam = np.asarray(cell.init(jax.random.key(0))["Lambda"], np.float64)
  a_c = (1.0 / (1.0 + np.exp(-lam))) ** 8
  assert a_c.min() >= 0.9 - 1e-5 and a_c.max() <= 0.999 + 1e-5
  assert abs(a_c.mean() - 0.9495) < 0.003          # U[0.9, 0.999]: mean 0.9495, sd 0.0286
  assert abs(a_c.std() - 0.099 / np.sqrt(12)) < 0.002


@pytest.mark.parametrize("name", ["lru", "rg_lru", "min_gru", "min_lstm"])
def test_diagonal_jacobian_is_the_modulus_of_autodiffs(name):
  """diagonal_jacobian(xp) = |dh_t/dh_{t-1}|, and the Jacobian really is diagonal."""
  cell = make_cell(name, D, H)
  params = perturbed(cell.init(jax.random.key(0)))
  x = jax.random.normal(jax.random.key(1), (D,))
  xp = cell.project_inputs(params, x)
  carry = jax.tree.map(lambda c: c + 0.5, cell.initial_carry())
  if name == "lru":
    def step(re, im):
      new, _ = cell.post(params, LRUCarry(re, im, carry.y), xp, None)
      return jax.lax.complex(new.re, new.im)
    # d h_t / d h_{t-1} for complex h: the real Jacobian of (re, im) is [[Re l, -Im l], [Im l, Re l]]
    J_re, J_im = jax.jit(jax.jacfwd(lambda re: (jnp.real(step(re, carry.im)),
                                                 jnp.imag(step(re, carry.im)))))(carry.re)
    got = np.sqrt(np.diag(J_re) ** 2 + np.diag(J_im) ** 2)
    off = np.asarray(J_re - jnp.diag(jnp.diag(J_re)))
  else:
    J = jax.jit(jax.jacfwd(lambda h: cell.post(params, h, xp, None)[0]))(carry)
    got, off = np.diag(J), np.asarray(J - jnp.diag(jnp.diag(J)))
  np.testing.assert_allclose(cell.diagonal_jacobian(params, xp), got, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(off, 0.0)
