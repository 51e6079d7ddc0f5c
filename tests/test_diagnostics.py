"""Gradient diagnostics against independent references.

The tanh RNN's dL/dh_t and ||dh_T/dh_t|| are checked against the explicit
product of per-step Jacobians J_t = diag(1 - h_t^2) W_h^T written by hand in
NumPy; the gated cells and stacks against central finite differences of a
float64 NumPy forward pass (tests/numpy_reference.py) that adds eps to one
hidden unit at one step.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpy_reference as ref
from recurrent import diagnostics as dg
from recurrent.layers import make_stack
from recurrent.models import LanguageModel, SequenceClassifier, SequenceTagger

B, T, D = 2, 6, 3


def _np(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _classifier(cell, hidden_sizes, residual=False):
  model = SequenceClassifier(cell=cell, hidden_sizes=hidden_sizes, num_outputs=1,
                             residual=residual)
  x = np.asarray(jax.random.normal(jax.random.key(0), (B, T, D)))
  variables = model.init(jax.random.key(1), x)
  return model, variables, x


def _squared_error(out):
  # L = sum_b 0.5 (y_b - 1)^2, the loss of the last step only (the classifier reads h_T).
  return 0.5 * jnp.sum((out[:, 0] - 1.0) ** 2)


def test_tanh_rnn_matches_explicit_jacobian_product():
  model, variables, x = _classifier("rnn", (4,))
  p = _np(variables["params"])
  cell_p = p["rnn"]["stack"][0]
  w_out, b_out = p["head"]["kernel"][:, 0], p["head"]["bias"][0]
  # Forward in NumPy.
  h = np.zeros((B, 4))
  hs = []
  for t in range(T):
    h = np.tanh(x[:, t] @ cell_p["W_x"] + h @ cell_p["W_h"] + cell_p["b"])
    hs.append(h)
  y = hs[-1] @ w_out + b_out
  # Backward by hand: dL/dh_{T-1} = (y - 1) w_out; dL/dh_{t-1} = J_t^T dL/dh_t.
  want = np.zeros((B, T, 4))
  want_jac = np.zeros((B, T))
  for b in range(B):
    g = (y[b] - 1.0) * w_out
    prod = np.eye(4)                                     # dh_{T-1}/dh_t
    for t in range(T - 1, -1, -1):
      want[b, t] = g
      want_jac[b, t] = np.linalg.norm(prod, 2)
      J_t = np.diag(1.0 - hs[t][b] ** 2) @ cell_p["W_h"].T  # dh_t/dh_{t-1}
      g = J_t.T @ g
      prod = prod @ J_t
  got = dg.hidden_gradients(model, variables, (x,), _squared_error)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-6)
  got_jac = dg.jacobian_norms(model, variables, (x,))
  np.testing.assert_allclose(np.asarray(got_jac), want_jac, rtol=1e-4, atol=1e-6)
  fro = dg.jacobian_norms(model, variables, (x,), ord="fro")
  assert np.all(np.asarray(fro) >= np.asarray(got_jac) - 1e-6)


def _numpy_stack_forward(cell, layer_params, x, perturb=None):
  """The last layer's h at the last step, with eps added to h[layer][b, t, j] when perturb is given."""
  h_in = x
  for li, p in enumerate(layer_params):
    H = p["W_h"].shape[0]
    h = np.zeros((x.shape[0], H))
    c = np.zeros_like(h)
    outs = []
    for t in range(x.shape[1]):
      if cell == "lstm":
        h, c = ref.lstm_step(p, h, c, h_in[:, t])
      elif cell == "gru":
        h = ref.gru_step(p, h, h_in[:, t])
      else:
        h = ref.elman_step(p, h, h_in[:, t])
      if perturb is not None and perturb[0] == li and perturb[2] == t:
        h = h.copy()
        h[:, perturb[3]] += perturb[4] * (np.arange(x.shape[0]) == perturb[1])
      outs.append(h)
    h_in = np.stack(outs, axis=1)
  return h_in[:, -1]


@pytest.mark.parametrize("cell,hidden_sizes,layer", [
    ("lstm", (3,), 0), ("gru", (3,), 0), ("lstm", (3, 4), 0), ("gru", (4, 3), 1), ("rnn", (3, 3), 0)])
def test_gradients_match_finite_differences(cell, hidden_sizes, layer):
  model, variables, x = _classifier(cell, hidden_sizes)
  p = _np(variables["params"])
  w_out, b_out = p["head"]["kernel"][:, 0], p["head"]["bias"][0]

  def loss(perturb=None):
    y = _numpy_stack_forward(cell, p["rnn"]["stack"], x.astype(np.float64), perturb) @ w_out + b_out
    return 0.5 * np.sum((y - 1.0) ** 2)

  got = np.asarray(dg.hidden_gradients(model, variables, (x,), _squared_error, layer=layer))
  eps = 1e-6
  for b, t, j in [(0, 0, 0), (1, 2, 1), (0, T - 1, 2), (1, T - 3, 0)]:
    fd = (loss((layer, b, t, j, eps)) - loss((layer, b, t, j, -eps))) / (2 * eps)
    np.testing.assert_allclose(got[b, t, j], fd, rtol=2e-3, atol=1e-6)


def test_lstm_carry_part_includes_the_cell_state():
  model, variables, x = _classifier("lstm", (3,))
  g_h = dg.hidden_gradients(model, variables, (x,), _squared_error, part="hidden")
  g_hc = dg.hidden_gradients(model, variables, (x,), _squared_error, part="carry")
  assert g_hc.shape == (B, T, 6)
  np.testing.assert_allclose(np.asarray(g_hc[..., :3]), np.asarray(g_h), rtol=1e-6)
  with pytest.raises(ValueError, match="part"):
    dg.hidden_gradients(model, variables, (x,), _squared_error, part="gates")


def test_zero_perturbation_leaves_every_model_unchanged():
  x = jax.random.normal(jax.random.key(2), (B, T, D))
  for model in (SequenceTagger(cell="gru", hidden_sizes=(4, 4), residual=True, num_outputs=3),
                SequenceClassifier(cell="lstm", hidden_sizes=(5,), pooling="mean")):
    variables = model.init(jax.random.key(3), x)
    out, trace = dg.perturbed_apply(model, variables, x)
    np.testing.assert_allclose(np.asarray(out), np.asarray(model.apply(variables, x)), atol=1e-6)
    assert len(trace.trajectories) == len(model.hidden_sizes)
  lm = LanguageModel(cell="rnn", hidden_sizes=(4,), vocab_size=5, embed_size=3)
  tokens = jnp.arange(12, dtype=jnp.int32).reshape(2, 6) % 5
  variables = lm.init(jax.random.key(4), tokens)
  (logits, _), _ = dg.perturbed_apply(lm, variables, tokens)
  np.testing.assert_allclose(np.asarray(logits), np.asarray(lm.apply(variables, tokens)[0]),
                             atol=1e-6)


def test_stack_level_scan_matches_stack_apply():
  stack = make_stack("lstm", D, (4, 4), residual=True)
  params = stack.init(jax.random.key(5))
  x = jax.random.normal(jax.random.key(6), (B, T, D))
  _, ys, _ = dg.stack_apply_with_deltas(stack, params, x, dg.zero_deltas(stack, B, T))
  np.testing.assert_allclose(np.asarray(ys), np.asarray(stack.apply(params, x)[1]), atol=1e-6)


def test_bad_inputs_raise():
  x = jnp.ones((B, T, D))
  bi = SequenceClassifier(cell="gru", hidden_sizes=(3,), bidirectional=True)
  with pytest.raises(ValueError, match="bidirectional"):
    dg.perturbed_apply(bi, bi.init(jax.random.key(0), x), x)
  model, variables, x = _classifier("rnn", (3,))
  with pytest.raises(ValueError, match="lengths"):
    dg.perturbed_apply(model, variables, x, jnp.array([T, 2]))


def test_effective_horizon_on_made_up_curves():
  k = np.arange(200)
  # 0.9^k falls below 1e-3 first at k = ceil(ln 1000 / ln(1/0.9)) = ceil(65.56) = 66.
  assert dg.effective_horizon(3.0 * 0.9 ** k) == 66
  assert dg.effective_horizon(0.9 ** k, factor=100) == 44        # ceil(43.71)
  assert dg.effective_horizon(1.1 ** k) == float("inf")          # exploding: never falls
  step = np.where(k < 7, 1.0, 1e-5)
  assert dg.effective_horizon(step) == 7
  assert dg.effective_horizon(np.zeros(5)) == 0.0
  with pytest.raises(ValueError, match="factor"):
    dg.effective_horizon(step, factor=0.5)


def test_by_distance_reverses_and_averages():
  norms = np.array([[1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0]])
  np.testing.assert_allclose(dg.by_distance(norms), [5.0, 4.0, 3.0, 2.0])
  np.testing.assert_allclose(dg.by_distance(norms, target=2), [4.0, 3.0, 2.0])


def test_singular_values_and_rescaling():
  model, variables, _ = _classifier("gru", (4,))
  w_h = np.asarray(variables["params"]["rnn"]["stack"][0]["W_h"])
  svs = dg.recurrent_singular_values(variables)
  (got,) = svs.values()
  want = [np.linalg.svd(w_h[:, 4 * g:4 * (g + 1)], compute_uv=False) for g in range(3)]
  np.testing.assert_allclose(np.asarray(got), np.stack(want), rtol=1e-5)
  scaled = dg.scale_recurrent(variables, 1.3)
  w_s = np.asarray(scaled["params"]["rnn"]["stack"][0]["W_h"])
  for g in range(3):
    s = np.linalg.svd(w_s[:, 4 * g:4 * (g + 1)], compute_uv=False)
    assert s[0] == pytest.approx(1.3, rel=1e-5)
    np.testing.assert_allclose(s / s[0], want[g] / want[g][0], rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(scaled["params"]["rnn"]["stack"][0]["W_x"]),
                                np.asarray(variables["params"]["rnn"]["stack"][0]["W_x"]))
