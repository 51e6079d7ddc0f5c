"""Each cell against NumPy written from the equations, against Flax's cells, and by finite differences."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import numpy_reference as ref
from recurrent import GRU, LSTM, Elman, LSTMCarry, make_cell, unroll

B, T, D, H = 3, 7, 5, 4


def random_params(cell, seed=0, scale=0.5):
  """Parameters with every entry random (biases and peepholes too), so no term can hide."""
  params = cell.init(jax.random.key(seed))
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed + 100), len(leaves))
  leaves = [scale * jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)]
  return jax.tree.unflatten(treedef, leaves)


def inputs(seed=1, shape=(B, T, D)):
  return np.asarray(jax.random.normal(jax.random.key(seed), shape), np.float32)


def np_params(params):
  return {k: np.asarray(v, np.float64) for k, v in params.items()}


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_elman_matches_numpy(activation):
  cell = Elman(D, H, activation=activation)
  params = random_params(cell)
  xs = inputs()
  carry, ys = unroll(cell, params, xs)
  p = np_params(params)
  h_ref, ys_ref = ref.run(
      lambda h, x: (lambda h2: (h2, h2))(ref.elman_step(p, h, x, activation)),
      xs.astype(np.float64), np.zeros((B, H)))
  np.testing.assert_allclose(ys, ys_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(carry, h_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("peephole", [False, True])
def test_lstm_matches_numpy(peephole):
  cell = LSTM(D, H, peephole=peephole)
  params = random_params(cell)
  xs = inputs()
  carry, ys = unroll(cell, params, xs)
  p = np_params(params)

  def step(state, x):
    h, c = ref.lstm_step(p, *state, x, peephole=peephole)
    return (h, c), h

  (h_ref, c_ref), ys_ref = ref.run(step, xs.astype(np.float64), (np.zeros((B, H)),) * 2)
  np.testing.assert_allclose(ys, ys_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(carry.h, h_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(carry.c, c_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_matches_numpy(reset_after):
  cell = GRU(D, H, reset_after=reset_after)
  params = random_params(cell)
  xs = inputs()
  carry, ys = unroll(cell, params, xs)
  p = np_params(params)
  h_ref, ys_ref = ref.run(
      lambda h, x: (lambda h2: (h2, h2))(ref.gru_step(p, h, x, reset_after)),
      xs.astype(np.float64), np.zeros((B, H)))
  np.testing.assert_allclose(ys, ys_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(carry, h_ref, rtol=1e-5, atol=1e-5)


def test_gru_forms_differ():
  """The two GRU forms are different functions of the same weights (else one test above proves nothing)."""
  params = random_params(GRU(D, H))
  xs = inputs()
  _, y_after = unroll(GRU(D, H, reset_after=True), params, xs)
  _, y_before = unroll(GRU(D, H, reset_after=False), params, xs)
  assert np.abs(np.asarray(y_after) - np.asarray(y_before)).max() > 1e-3


def test_lstm_forget_bias_and_peephole_init():
  params = LSTM(D, H, forget_bias=2.5, peephole=True).init(jax.random.key(0))
  np.testing.assert_array_equal(params["b"][H:2 * H], 2.5)
  np.testing.assert_array_equal(params["b"][:H], 0.0)
  np.testing.assert_array_equal(params["b"][2 * H:], 0.0)
  assert set(params) == {"W_x", "W_h", "b", "p_i", "p_f", "p_o"}


def test_recurrent_init_is_orthogonal_per_gate():
  params = LSTM(D, H).init(jax.random.key(0))
  for k in range(4):
    block = np.asarray(params["W_h"][:, k * H:(k + 1) * H])
    np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)


def flax_scan(flax_cell, flax_params, xs, carry):
  def body(carry, x):
    return flax_cell.apply({"params": flax_params}, carry, x)
  carry, ys = jax.lax.scan(body, carry, jnp.swapaxes(xs, 0, 1))
  return carry, jnp.swapaxes(ys, 0, 1)


def test_lstm_matches_flax_lstmcell():
  flax_cell = nn.LSTMCell(features=H)
  xs = inputs()
  carry0 = flax_cell.initialize_carry(jax.random.key(0), xs[:, 0].shape)
  fp = flax_cell.init(jax.random.key(3), carry0, xs[:, 0])["params"]
  # Make the biases non-zero so that their mapping is tested too.
  fp = jax.tree.map(lambda a: a + 0.1 * jnp.arange(a.size, dtype=a.dtype).reshape(a.shape) / a.size,
                    fp)
  gates = ("i", "f", "g", "o")
  params = {
      "W_x": jnp.concatenate([fp[f"i{g}"]["kernel"] for g in gates], axis=-1),
      "W_h": jnp.concatenate([fp[f"h{g}"]["kernel"] for g in gates], axis=-1),
      "b": jnp.concatenate([fp[f"h{g}"]["bias"] for g in gates], axis=-1),
  }
  (c_f, h_f), ys_f = flax_scan(flax_cell, fp, xs, carry0)
  carry, ys = unroll(LSTM(D, H), params, xs)
  np.testing.assert_allclose(ys, ys_f, atol=1e-5)
  np.testing.assert_allclose(carry.h, h_f, atol=1e-5)
  np.testing.assert_allclose(carry.c, c_f, atol=1e-5)


def test_gru_reset_after_matches_flax_grucell():
  flax_cell = nn.GRUCell(features=H)
  xs = inputs()
  carry0 = flax_cell.initialize_carry(jax.random.key(0), xs[:, 0].shape)
  fp = flax_cell.init(jax.random.key(3), carry0, xs[:, 0])["params"]
  fp = jax.tree.map(lambda a: a + 0.1 * jnp.cos(jnp.arange(a.size, dtype=a.dtype)).reshape(a.shape),
                    fp)
  params = {
      "W_x": jnp.concatenate([fp[f"i{g}"]["kernel"] for g in "rzn"], axis=-1),
      "W_h": jnp.concatenate([fp[f"h{g}"]["kernel"] for g in "rzn"], axis=-1),
      "b": jnp.concatenate([fp[f"i{g}"]["bias"] for g in "rzn"], axis=-1),
      "b_hn": fp["hn"]["bias"],
  }
  h_f, ys_f = flax_scan(flax_cell, fp, xs, carry0)
  carry, ys = unroll(GRU(D, H, reset_after=True), params, xs)
  np.testing.assert_allclose(ys, ys_f, atol=1e-5)
  np.testing.assert_allclose(carry, h_f, atol=1e-5)


@pytest.mark.parametrize("name,kwargs", [
    ("rnn_tanh", {}), ("rnn_relu", {}), ("lstm", {}), ("lstm", {"peephole": True}),
    ("gru", {}), ("gru_reset_before", {}),
])
def test_gradients_match_finite_differences(name, kwargs):
  with jax.enable_x64(True):
    cell = make_cell(name, 3, 4, param_dtype=jnp.float64, **kwargs)
    params = random_params(cell, seed=2)
    xs = jax.random.normal(jax.random.key(5), (2, 5, 3), jnp.float64)
    if name == "rnn_relu":  # keep pre-activations away from relu's kink at 0
      params = dict(params, b=params["b"] + 2.0)
    carry0 = jax.tree.map(lambda z: z.astype(jnp.float64), cell.initial_carry((2,)))

    def loss(params, xs):
      def body(carry, x):
        return cell(params, carry, x)
      _, ys = jax.lax.scan(body, carry0, jnp.swapaxes(xs, 0, 1))
      return jnp.sum(jnp.sin(ys))

    check_grads(jax.jit(loss), (params, xs), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_make_cell_unknown_name_lists_valid():
  with pytest.raises(ValueError, match=r"cell: unknown cell 'lstn'.*'gru'.*'lstm'"):
    make_cell("lstn", 3, 4)


@pytest.mark.parametrize("field,value", [("input_size", 0), ("hidden_size", -2),
                                         ("hidden_size", 2.5)])
def test_non_positive_sizes_rejected(field, value):
  kwargs = {"input_size": 3, "hidden_size": 4, field: value}
  with pytest.raises(ValueError, match=rf"{field}: must be an integer >= 1, got {value!r}"):
    LSTM(**kwargs)


def test_bad_activation_rejected():
  with pytest.raises(ValueError, match="activation must be one of"):
    Elman(3, 4, activation="sigmoid")


def test_carry_types():
  assert isinstance(LSTM(D, H).initial_carry((2,)), LSTMCarry)
  assert LSTM(D, H).initial_carry((2, 3)).c.shape == (2, 3, H)
  assert GRU(D, H).initial_carry().shape == (H,)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_gate_activations_are_sigmoid_and_tanh_by_block_with_their_derivatives(dtype):
  """recurrent.cells.base.gate_activations (one tanh forward, custom JVP) against NumPy's formulas."""
  from recurrent.cells.base import gate_activations
  with jax.enable_x64(dtype == jnp.float64):
    blocks = (True, False, True)
    x = np.random.default_rng(0).normal(scale=4.0, size=(3, 2, 12))
    x[0, 0, :3] = (-40.0, 0.0, 40.0)                                 # saturated and centre values
    dx = np.random.default_rng(1).normal(size=x.shape)
    sig = 1 / (1 + np.exp(-x))
    is_sig = np.repeat(blocks, 4)
    want = np.where(is_sig, sig, np.tanh(x))
    dwant = np.where(is_sig, sig * (1 - sig), 1 - np.tanh(x) ** 2) * dx
    # float32: (1 + tanh(x/2)) / 2 is accurate to a few ulps of 1, not relative to a tiny sigma, and
    # sigma (1 - sigma) (JAX's own sigmoid derivative) loses 1 - sigma's digits near 1: atol 1e-6
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == jnp.float32 else dict(rtol=1e-12, atol=1e-15)
    f = lambda v: gate_activations(v, blocks)
    np.testing.assert_allclose(f(jnp.asarray(x, dtype)), want, **tol)
    np.testing.assert_allclose(jax.jit(f)(jnp.asarray(x, dtype)), want, **tol)
    y, dy = jax.jvp(f, (jnp.asarray(x, dtype),), (jnp.asarray(dx, dtype),))
    np.testing.assert_allclose(dy, dwant, **tol)
    g = jax.grad(lambda v: jnp.sum(f(v) * jnp.asarray(dx, dtype)))(jnp.asarray(x, dtype))
    np.testing.assert_allclose(g, dwant, **tol)
  with pytest.raises(ValueError, match="last axis 12 is not 5 equal blocks"):
    gate_activations(jnp.zeros((2, 12)), (True,) * 5)


def test_sigmoid_is_the_logistic_function_with_its_derivative():
  """recurrent.cells.base.sigmoid (a tanh forward, JAX's sigmoid derivative) against NumPy."""
  from recurrent.cells.base import sigmoid
  x = np.concatenate([np.linspace(-30, 30, 61), [0.0, 1e-3, -1e-3]]).astype(np.float32)
  want = 1 / (1 + np.exp(-x.astype(np.float64)))
  np.testing.assert_allclose(jax.jit(sigmoid)(jnp.asarray(x)), want, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(jax.grad(lambda v: jnp.sum(sigmoid(v)))(jnp.asarray(x)),
                             want * (1 - want), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rows", [(1,), (2, 3), (7, 5)])   # N <= D + 1: bias added; N > D + 1: bias in the matmul
def test_project_inputs_is_x_w_plus_b_on_both_paths(rows):
  cell = make_cell("lstm", 4, 3)
  params = random_params(cell, seed=3)
  xs = np.random.default_rng(4).normal(size=rows + (4,)).astype(np.float32)
  want = xs @ np.asarray(params["W_x"]) + np.asarray(params["b"])
  np.testing.assert_allclose(cell.project_inputs(params, jnp.asarray(xs)), want, rtol=1e-5, atol=1e-6)
  dW = np.random.default_rng(5).normal(size=params["W_x"].shape).astype(np.float32)
  _, tangent = jax.jvp(lambda W: cell.project_inputs(dict(params, W_x=W), jnp.asarray(xs)),
                       (params["W_x"],), (jnp.asarray(dW),))
  np.testing.assert_allclose(tangent, xs @ dW, rtol=1e-5, atol=1e-6)
  g = jax.grad(lambda b: jnp.sum(cell.project_inputs(dict(params, b=b), jnp.asarray(xs))))(params["b"])
  np.testing.assert_allclose(g, np.full(12, np.prod(rows), np.float32), rtol=1e-6)


def test_rows_matmul_derivatives_are_the_matmuls():
  """cells.base.rows_matmul (custom JVP, symbolic zeros) against NumPy: value, each tangent alone, both gradients."""
  from recurrent.cells.base import rows_matmul
  r = np.random.default_rng(6)
  x, W, dx, dW, ct = (r.normal(size=s).astype(np.float32) for s in ((9, 4), (4, 6), (9, 4), (4, 6), (9, 6)))
  tol = dict(rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(rows_matmul(x, W), x @ W, **tol)
  np.testing.assert_allclose(jax.jvp(lambda W: rows_matmul(x, W), (W,), (dW,))[1], x @ dW, **tol)
  np.testing.assert_allclose(jax.jvp(lambda x: rows_matmul(x, W), (x,), (dx,))[1], dx @ W, **tol)
  np.testing.assert_allclose(jax.jvp(rows_matmul, (x, W), (dx, dW))[1], dx @ W + x @ dW, **tol)
  gx, gW = jax.grad(lambda x, W: jnp.sum(rows_matmul(x, W) * ct), (0, 1))(x, W)
  np.testing.assert_allclose(gx, ct @ W.T, **tol)
  np.testing.assert_allclose(gW, x.T @ ct, **tol)
