"""Flax NNX modules: forward against NumPy, one checkpoint in three forms, training, diagnostics."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import numpy_reference as ref
from recurrent import diagnostics as dg
from recurrent import nnx as rnnx
from recurrent.layers import make_stack
from recurrent.nn import RNN as LinenRNN

B, T, D = 3, 5, 4


def _x(seed=0):
  return np.asarray(jax.random.normal(jax.random.key(seed), (B, T, D)), np.float32)


def _np(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def test_cell_step_and_unroll_match_numpy_lstm():
  cell = rnnx.Cell("lstm", D, 6, rngs=nnx.Rngs(0))
  p = _np(cell.pure_params())
  x = _x()
  carry, y = cell(cell.initial_carry((B,)), x[:, 0])
  h1, c1 = ref.lstm_step(p, np.zeros((B, 6)), np.zeros((B, 6)), x[:, 0])
  np.testing.assert_allclose(y, h1, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(carry.c, c1, rtol=1e-5, atol=1e-6)
  lengths = np.array([5, 2, 0], np.int32)
  final, ys = cell.unroll(x, lengths)
  np.testing.assert_array_equal(ys[2], 0.0)             # length 0: zero outputs, the zero carry
  np.testing.assert_array_equal(final.h[2], 0.0)
  for b, L in enumerate(lengths[:2]):
    state = (np.zeros((1, 6)), np.zeros((1, 6)))
    (h, c), want = ref.run(lambda s, xt: ((o := ref.lstm_step(p, *s, xt)), o[0]),
                           x[b:b + 1, :L], state)
    np.testing.assert_allclose(ys[b, :L], want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ys[b, L:], 0.0)
    np.testing.assert_allclose(final.h[b], h[0], rtol=1e-5, atol=1e-6)


def test_rnn_matches_numpy_residual_gru_stack():
  rnn = rnnx.RNN(D, (4, 4), "gru", residual=True, rngs=nnx.Rngs(1))
  p = _np(rnn.pure_params())
  x = _x(1)
  carries, ys = rnn(x)
  h_in = x.astype(np.float64)
  for layer in p:
    final, out = ref.run(lambda h, xt: ((o := ref.gru_step(layer, h, xt)), o), h_in,
                         np.zeros((B, 4)))
    h_in = out + h_in if out.shape[-1] == h_in.shape[-1] else out
  np.testing.assert_allclose(ys, h_in, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(carries[-1], final, rtol=1e-5, atol=1e-5)


def test_rnn_matches_numpy_highway_gru_stack():
  """y <- T * y + (1 - T) * x with T = sigma(x W_T + b_T), where sizes match (layers 2 and 3 here)."""
  rnn = rnnx.RNN(D, (6, 6, 6), "gru", highway=True, rngs=nnx.Rngs(2))
  p = _np(rnn.pure_params())
  assert p["highway"][0] is None                       # D != 6: no gate on the first layer
  x = _x(2)
  carries, ys = rnn(x)
  h_in = x.astype(np.float64)
  for layer, gate in zip(p["layers"], p["highway"]):
    final, out = ref.run(lambda h, xt: ((o := ref.gru_step(layer, h, xt)), o), h_in,
                         np.zeros((B, 6)))
    if gate is not None:
      t = 1.0 / (1.0 + np.exp(-(h_in @ gate["W_T"] + gate["b_T"])))
      out = t * out + (1.0 - t) * h_in
    h_in = out
  np.testing.assert_allclose(ys, h_in, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(carries[-1], final, rtol=1e-5, atol=1e-5)
  linen = LinenRNN(hidden_sizes=(6, 6, 6), cell="gru", highway=True)
  want = linen.apply({"params": {"stack": rnn.pure_params()}}, jnp.asarray(x))
  np.testing.assert_allclose(ys, want[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm"])   # GRU and tanh forms: the tests above and below
def test_one_checkpoint_in_pure_linen_and_nnx_forms(cell):
  x, lengths = _x(2), jnp.array([5, 3, 1], jnp.int32)
  rnn = rnnx.RNN(D, (6, 5), cell, bidirectional=True, rngs=nnx.Rngs(2))
  pure = rnn.pure_params()
  stack = make_stack(cell, D, (6, 5), bidirectional=True)
  want_c, want_y = stack.apply(pure, x, lengths)
  got_c, got_y = rnn(x, lengths)
  np.testing.assert_array_equal(got_y, want_y)
  jax.tree.map(np.testing.assert_array_equal, got_c, want_c)
  zeros = rnn.initial_carries(B)                      # the carries' structure, shapes and dtypes, at zero
  assert jax.tree.structure(zeros) == jax.tree.structure(got_c)
  for z, c in zip(jax.tree.leaves(zeros), jax.tree.leaves(got_c)):
    assert (z.shape, z.dtype) == (c.shape, c.dtype) and not np.any(z)
  linen = LinenRNN(cell, (6, 5), bidirectional=True)
  linen_vars = linen.init(jax.random.key(9), x, lengths)
  assert jax.tree.structure(linen_vars["params"]["stack"]) == jax.tree.structure(pure)
  _, lin_y = linen.apply({"params": {"stack": pure}}, x, lengths)
  np.testing.assert_array_equal(lin_y, want_y)
  # and back: linen's weights loaded into a fresh NNX module are linen's weights, leaf by leaf
  fresh = rnnx.RNN(D, (6, 5), cell, bidirectional=True, rngs=nnx.Rngs(3))
  fresh.load_params(linen_vars["params"]["stack"])
  jax.tree.map(np.testing.assert_array_equal, fresh.pure_params(), linen_vars["params"]["stack"])


def test_load_params_names_the_bad_entry():
  rnn = rnnx.RNN(D, (4,), "lstm", rngs=nnx.Rngs(0))
  p = rnn.pure_params()
  bad = [dict(p[0], W_h=jnp.zeros((4, 8)))]
  with pytest.raises(ValueError, match=r"\[0\]\['W_h'\]: expected shape \(4, 16\), got \(4, 8\)"):
    rnn.load_params(bad)
  missing = [{k: v for k, v in p[0].items() if k != "b"}]
  with pytest.raises(ValueError, match=r"missing \[0\]\['b'\], expected shape \(16,\)"):
    rnn.load_params(missing)
  extra = [dict(p[0], p_i=jnp.zeros(4))]
  with pytest.raises(ValueError, match=r"unexpected entry \[0\]\['p_i'\]"):
    rnn.load_params(extra)


def test_dropout_follows_train_and_eval_modes():
  x = _x(3)
  rnn = rnnx.RNN(D, (8, 8), "gru", dropout=0.5, rngs=nnx.Rngs(params=0, dropout=1))
  pure = rnn.pure_params()
  stack = make_stack("gru", D, (8, 8), dropout=0.5)
  det = stack.apply(pure, x)[1]
  a, b = rnn(x)[1], rnn(x)[1]
  assert not np.allclose(a, det) and not np.allclose(a, b)        # training: a new mask per call
  key = nnx.Rngs(dropout=7)["dropout"]()
  np.testing.assert_array_equal(rnn(x, rngs=nnx.Rngs(dropout=7))[1], stack.apply(pure, x, rng=key)[1])
  rnn.eval()
  np.testing.assert_array_equal(rnn(x)[1], det)


class _Regressor(nnx.Module):
  def __init__(self, cell, rngs):
    self.rnn = rnnx.RNN(D, (8,), cell, rngs=rngs)
    self.head = nnx.Linear(8, 1, rngs=rngs)

  def __call__(self, x):
    carries, _ = self.rnn(x)
    h = carries[-1].h if hasattr(carries[-1], "h") else carries[-1]
    return self.head(h)[:, 0]


def test_trains_with_nnx_optimizer_like_optax_on_the_pure_params():
  x = _x(4)
  y = jnp.sum(x[:, :, 0], axis=1)                   # the sum of the first feature over time
  model = _Regressor("lstm", nnx.Rngs(0))
  tx = optax.adam(1e-2)
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

  # The same first step by hand: optax on the pure pytree, the loss through Stack.apply.
  stack = model.rnn.stack
  pure = {"rnn": model.rnn.pure_params(), "W": model.head.kernel.get_value(),
          "b": model.head.bias.get_value()}

  def pure_loss(p):
    carries, _ = stack.apply(p["rnn"], x)
    pred = (carries[-1].h @ p["W"])[:, 0] + p["b"][0]
    return jnp.mean((pred - y) ** 2)

  g = jax.grad(pure_loss)(pure)
  upd, _ = tx.update(g, tx.init(pure), pure)
  want = optax.apply_updates(pure, upd)

  @nnx.jit
  def step(model, opt):
    loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    opt.update(model, grads)
    return loss

  losses = [float(step(model, opt))]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               model.rnn.pure_params(), want["rnn"])
  losses += [float(step(model, opt)) for _ in range(30)]
  assert losses[-1] < 0.5 * losses[0], losses


class _TanhClassifier(nnx.Module):
  def __init__(self, rngs):
    self.rnn = rnnx.RNN(D, (4,), "rnn", rngs=rngs)
    self.head = nnx.Linear(4, 1, rngs=rngs)

  def __call__(self, x):
    carries, _ = self.rnn(x)
    return self.head(carries[-1])


def test_gradient_diagnostics_on_an_nnx_model_match_the_explicit_jacobian_product():
  model = _TanhClassifier(nnx.Rngs(5))
  x = _x(5).astype(np.float64)
  p = _np(model.rnn.pure_params()[0])
  w_out = np.asarray(model.head.kernel.get_value(), np.float64)[:, 0]
  b_out = float(model.head.bias.get_value()[0])
  h, hs = np.zeros((B, 4)), []
  for t in range(T):
    h = np.tanh(x[:, t] @ p["W_x"] + h @ p["W_h"] + p["b"])
    hs.append(h)
  y = hs[-1] @ w_out + b_out
  want, want_jac = np.zeros((B, T, 4)), np.zeros((B, T))
  for b in range(B):
    g, prod = (y[b] - 1.0) * w_out, np.eye(4)
    for t in range(T - 1, -1, -1):
      want[b, t], want_jac[b, t] = g, np.linalg.norm(prod, 2)
      J_t = np.diag(1.0 - hs[t][b] ** 2) @ p["W_h"].T
      g, prod = J_t.T @ g, prod @ J_t
  loss = lambda out: 0.5 * jnp.sum((out[:, 0] - 1.0) ** 2)
  got = dg.hidden_gradients(model, None, (x.astype(np.float32),), loss)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  got_jac = dg.jacobian_norms(model, None, (x.astype(np.float32),))
  np.testing.assert_allclose(got_jac, want_jac, rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="variables"):
    dg.hidden_gradients(model, {"params": {}}, (x,), loss)


def test_cell_step_names_a_carry_of_another_batch_and_a_wrong_input_size():
  """Before: a broadcasting error from inside the cell's matmul."""
  cell = rnnx.Cell("lstm", 3, 4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"^carry\.h: expected shape \(2, 4\) = \[B=2, H=4\].*got \(3, 4\)$"):
    cell(cell.initial_carry((3,)), jnp.ones((2, 3)))
  with pytest.raises(ValueError, match=r"^x: expected shape \[\.\.\., D=3\], got \(2, 5\)$"):
    cell(cell.initial_carry((2,)), jnp.ones((2, 5)))
  rnn = rnnx.RNN(3, (4,), "gru", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"^initial_carries\[0\]: expected shape \(2, 4\) = \[B=2, H=4\]"):
    rnn(jnp.ones((2, 5, 3)), initial_carries=rnn.initial_carries(3))
