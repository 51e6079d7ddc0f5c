"""minGRU / minLSTM: the associative scan (a custom VJP) and the sequential engine (impl="hoisted")
against autodiff of the step-by-step scan, finite differences and a NumPy reference.

The NumPy reference is written from Feng et al. 2024 (arXiv:2410.01201), log-space
variants (Algorithms 5 and 6, with g(x) = x + 1/2 for x >= 0, sigma(x) otherwise),
as a plain loop in normal space.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrent import make_cell, make_stack, unroll
from recurrent.nn import RNN

B, T, D, H = 3, 9, 4, 5
LENGTHS = np.array([9, 4, 0])


def np_sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def np_g(x):
  return np.where(x >= 0, x + 0.5, np_sigmoid(x))


def np_min_gru(W, b, xs, h):
  ys = []
  for t in range(xs.shape[1]):
    k, p = np.split(xs[:, t] @ W + b, 2, axis=-1)
    z = np_sigmoid(k)
    h = (1 - z) * h + z * np_g(p)
    ys.append(h)
  return h, np.stack(ys, 1)


def np_min_lstm(W, b, xs, h):
  ys = []
  for t in range(xs.shape[1]):
    k_f, k_i, p = np.split(xs[:, t] @ W + b, 3, axis=-1)
    f, i = np_sigmoid(k_f), np_sigmoid(k_i)
    h = f / (f + i) * h + i / (f + i) * np_g(p)
    ys.append(h)
  return h, np.stack(ys, 1)


REFS = {"min_gru": np_min_gru, "min_lstm": np_min_lstm}


@pytest.mark.parametrize("name", list(REFS))
def test_associative_and_sequential_equal_numpy_reference(name):
  cell = make_cell(name, D, H)
  params = cell.init(jax.random.key(0))
  xs = 3.0 * jax.random.normal(jax.random.key(1), (B, T, D))
  h0 = jax.random.normal(jax.random.key(2), (B, H))
  want_h, want_y = REFS[name](np.asarray(params["W_x"], np.float64),
                              np.asarray(params["b"], np.float64), np.asarray(xs, np.float64),
                              np.asarray(h0, np.float64))
  for impl in ("associative", "hoisted", "scan"):
    h, y = unroll(cell, params, xs, initial_carry=h0, impl=impl)
    np.testing.assert_allclose(y, want_y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h, want_h, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("impl", ["associative", "hoisted"])
@pytest.mark.parametrize("name", list(REFS))
def test_custom_vjp_gradients_equal_autodiff_of_the_sequential_scan(name, impl):
  cell = make_cell(name, D, H)
  params = cell.init(jax.random.key(0))
  xs = 3.0 * jax.random.normal(jax.random.key(1), (B, T, D))
  w = jax.random.normal(jax.random.key(3), (B, T, H))

  def loss(p, x, impl, reverse):
    h, y = unroll(cell, p, x, LENGTHS, reverse=reverse, impl=impl)
    return jnp.sum(y * w) + jnp.sum(jnp.sin(h))

  for reverse in (False, True):
    ref = jax.value_and_grad(loss, argnums=(0, 1))(params, xs, "scan", reverse)
    got = jax.value_and_grad(loss, argnums=(0, 1))(params, xs, impl, reverse)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), ref, got)
    assert all(bool(jnp.all(jnp.isfinite(l))) for l in jax.tree.leaves(got))


@pytest.mark.slow
def test_padded_steps_leave_the_state_unchanged_and_long_sequences_stay_finite():
  cell = make_cell("min_gru", D, H)
  params = cell.init(jax.random.key(0))
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  garbage = jnp.where((np.arange(T)[None, :] < LENGTHS[:, None])[..., None], xs, 1e3)
  h, y = unroll(cell, params, garbage, LENGTHS)
  for b, L in enumerate(LENGTHS):
    h_b, _ = unroll(cell, params, xs[b:b + 1, :L], impl="scan")
    np.testing.assert_allclose(h[b], h_b[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(y[b, L:], 0.0)
  h, y = unroll(cell, params, jnp.full((1, 1024, D), -30.0), impl="associative")  # gates near 0, 1
  assert bool(jnp.all(jnp.isfinite(y)))


def test_registered_cells_build_stacks_and_the_flax_module():
  stack = make_stack("min_lstm", D, (H, H), bidirectional=True)
  params = stack.init(jax.random.key(0))
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  _, y = stack.apply(params, xs, LENGTHS)
  assert y.shape == (B, T, 2 * H)
  model = RNN(cell="min_gru", hidden_sizes=(H,))
  variables = model.init(jax.random.key(0), xs, LENGTHS)
  _, y_flax = model.apply(variables, xs, LENGTHS)
  cell = make_cell("min_gru", D, H)
  _, y_pure = unroll(cell, variables["params"]["stack"][0], xs, LENGTHS, impl="scan")
  np.testing.assert_allclose(y_flax, y_pure, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["associative", "hoisted"])
def test_linear_recurrence_gradients_match_finite_differences_in_float64(impl):
  """The parallel custom VJP and the sequential engine, initial state and padding included, vs central differences."""
  from jax.test_util import check_grads

  from recurrent.cells.minimal import linear_scan_log

  with jax.enable_x64(True):
    r = np.random.default_rng(0)
    h0 = jnp.asarray(r.normal(size=(B, H)))
    w = jnp.asarray(r.normal(size=(T, B, H)))
    mask = jnp.asarray(np.arange(T)[:, None] < LENGTHS[None, :])
    if impl == "associative":
      log_a = jnp.asarray(-np.abs(r.normal(size=(T, B, H))))      # 0 < a <= 1
      log_b = jnp.asarray(r.normal(size=(T, B, H)))
      f = lambda la, lb, h: (lambda hT, ys: jnp.sum(ys * w) + jnp.sum(jnp.sin(hT)))(
          *linear_scan_log(la, lb, mask, h))
      check_grads(jax.jit(f), (log_a, log_b, h0), order=1, modes=("rev",), eps=1e-6, atol=1e-6, rtol=1e-6)
    else:
      cell = make_cell("min_lstm", D, H, param_dtype=jnp.float64)
      params = cell.init(jax.random.key(0))
      xs = jnp.asarray(r.normal(size=(B, T, D)))
      f = lambda p, x, h: (lambda hT, ys: jnp.sum(ys * jnp.swapaxes(w, 0, 1)) + jnp.sum(jnp.sin(hT)))(
          *unroll(cell, p, x, LENGTHS, initial_carry=h, impl="hoisted"))
      check_grads(jax.jit(f), (params, xs, h0), order=1, modes=("rev", "fwd"), eps=1e-6, atol=1e-6,
                  rtol=1e-6)


@pytest.mark.parametrize("impl", ["associative", "hoisted"])
@pytest.mark.parametrize("name", list(REFS))
def test_gradient_of_the_initial_state_equals_autodiff_of_the_sequential_scan(name, impl):
  cell = make_cell(name, D, H)
  params = cell.init(jax.random.key(0))
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  h0 = jax.random.normal(jax.random.key(2), (B, H))

  def loss(h, impl):
    hT, y = unroll(cell, params, xs, LENGTHS, initial_carry=h, impl=impl)
    return jnp.sum(y ** 2) + jnp.sum(hT)

  np.testing.assert_allclose(jax.grad(loss)(h0, impl), jax.grad(loss)(h0, "scan"),
                             rtol=1e-5, atol=1e-6)
