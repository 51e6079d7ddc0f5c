"""Weight converters against the source libraries: PyTorch (fixtures), Flax linen and NNX, Keras 3 (JAX backend).

The PyTorch outputs come from tests/fixtures/torch_*.npz, written by
experiments/make_torch_fixtures.py (PyTorch 2.13, packed sequences with
lengths 6, 4, 1); Flax and Keras run here. Each case checks that the converted
weights give the source library's outputs and final carries, that round trips
are exact, and that bad input fails naming the key and the expected shape.
"""

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

from recurrent import convert  # noqa: E402
from recurrent.cells import make_cell  # noqa: E402
from recurrent.layers import make_stack, unroll  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
B, T, D, H = 3, 6, 4, 5
TOL = dict(rtol=2e-5, atol=2e-6)


def _x(seed=0):
  return np.asarray(jax.random.normal(jax.random.key(seed), (B, T, D)), np.float32)


def _random_params(cell, seed=0):
  """Our parameters with every entry random (biases included), so nothing passes by being zero."""
  p = cell.init(jax.random.key(seed))
  keys = jax.random.split(jax.random.key(seed + 100), len(p))
  return {k: np.asarray(v + 0.3 * jax.random.normal(kk, v.shape), np.float32)
          for (k, v), kk in zip(sorted(p.items()), keys)}


def _assert_tree_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)


# ----------------------------------------------------------------------------- PyTorch

def _fixture(name):
  f = np.load(FIXTURES / f"torch_{name}.npz")
  spec = json.loads(str(f["spec"]))
  sd = {k[3:]: f[k] for k in f.files if k.startswith("sd/")}
  return f, spec, sd


@pytest.mark.parametrize("name", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_torch_state_dict_gives_torch_outputs_and_final_states(name):
  f, spec, sd = _fixture(name)
  stack = make_stack(spec["cell"], spec["input_size"], (spec["hidden_size"],) * spec["num_layers"],
                     bidirectional=spec["bidirectional"])
  params = convert.from_torch(stack, sd)
  carries, y = stack.apply(params, f["x"], f["lengths"])
  np.testing.assert_allclose(y, f["y"], **TOL)
  per_direction = []
  for c in carries:
    per_direction += list(c) if spec["bidirectional"] else [c]
  h = np.stack([c.h if hasattr(c, "h") else c for c in per_direction])
  np.testing.assert_allclose(h, f["h_n"], **TOL)            # PyTorch's order: layer-major, then direction
  if "c_n" in f.files:
    np.testing.assert_allclose(np.stack([c.c for c in per_direction]), f["c_n"], **TOL)
  # Round trips: ours -> torch -> ours is exact; torch -> ours -> torch keeps weights and bias sums.
  back = convert.to_torch(stack, params)
  _assert_tree_equal(convert.from_torch(stack, back), params)
  assert sorted(back) == sorted(sd)
  for k in sd:
    if k.startswith("weight"):
      np.testing.assert_array_equal(back[k], sd[k])
  for k in (k for k in sd if k.startswith("bias_ih")):
    kh = k.replace("bias_ih", "bias_hh")
    if spec["cell"] == "gru":   # r and z add up; the candidate's recurrent bias stays apart
      np.testing.assert_allclose(back[k][:2 * H] + back[kh][:2 * H], sd[k][:2 * H] + sd[kh][:2 * H], rtol=1e-6)
      np.testing.assert_array_equal(back[kh][2 * H:], sd[kh][2 * H:])
      np.testing.assert_array_equal(back[k][2 * H:], sd[k][2 * H:])
    else:
      np.testing.assert_allclose(back[k] + back[kh], sd[k] + sd[kh], rtol=1e-6)


def test_torch_bad_input_names_the_key_and_shape():
  _, spec, sd = _fixture("gru")
  stack = make_stack("gru", D, (H, H), bidirectional=True)
  missing = {k: v for k, v in sd.items() if k != "bias_hh_l1_reverse"}
  with pytest.raises(ValueError, match=r"missing key 'bias_hh_l1_reverse' \(expected shape \(15,\)\)"):
    convert.from_torch(stack, missing)
  with pytest.raises(ValueError, match=r"unexpected key 'weight_hr_l0'"):
    convert.from_torch(stack, {**sd, "weight_hr_l0": np.zeros((5, 5))})
  bad = {**sd, "weight_hh_l0": np.zeros((15, 4))}
  with pytest.raises(ValueError, match=r"\['weight_hh_l0'\]: expected shape \(15, 5\), got \(15, 4\)"):
    convert.from_torch(stack, bad)
  before = make_stack("gru_reset_before", D, (H, H), bidirectional=True)
  with pytest.raises(ValueError, match=r"reset_after"):
    convert.to_torch(before, before.init(jax.random.key(0)))
  with pytest.raises(ValueError, match=r"reset_after"):
    convert.from_torch(before, sd)
  peep = make_stack("lstm", D, (H,), peephole=True)
  with pytest.raises(ValueError, match=r"peephole"):
    convert.to_torch(peep, peep.init(jax.random.key(0)))
  res = make_stack("gru", D, (H, H), residual=True)
  with pytest.raises(ValueError, match=r"stack.residual"):
    convert.to_torch(res, res.init(jax.random.key(0)))
  with pytest.raises(ValueError, match=r"params\[0\]: a bidirectional layer's parameters are"):
    convert.to_torch(stack, [stack.init(jax.random.key(0))[0]["fw"], stack.init(jax.random.key(0))[1]])
  bad_ours = stack.init(jax.random.key(0))
  bad_ours[0]["fw"] = {k: v for k, v in bad_ours[0]["fw"].items() if k != "b_hn"}
  with pytest.raises(ValueError, match=r"params: missing key 'b_hn' \(expected shape \(5,\)\)"):
    convert.to_torch(stack, bad_ours)


# ----------------------------------------------------------------------------- Flax linen

LINEN = {"LSTMCell": ("lstm", nn.LSTMCell), "OptimizedLSTMCell": ("lstm", nn.OptimizedLSTMCell),
         "GRUCell": ("gru", nn.GRUCell), "SimpleCell": ("rnn", nn.SimpleCell)}


def _flax_run(step, carry, x):
  ys = []
  for t in range(x.shape[1]):
    carry, y = step(carry, x[:, t])
    ys.append(y)
  return carry, np.stack(ys, 1)


def _ours_from_flax_carry(name, carry):
  return carry[1] if name.endswith("LSTMCell") else carry       # Flax's LSTM carry is (c, h)


@pytest.mark.parametrize("kind", list(LINEN))
def test_flax_linen_cells(kind):
  cell_name, cls = LINEN[kind]
  flax_cell = cls(features=H)
  x = _x(1)
  c0 = flax_cell.initialize_carry(jax.random.key(0), (B, D))
  variables = flax_cell.init(jax.random.key(2), c0, x[:, 0])
  keys = iter(jax.random.split(jax.random.key(3), 32))
  fparams = jax.tree.map(lambda a: np.asarray(a + 0.3 * jax.random.normal(next(keys), a.shape)),
                         variables["params"])                 # nonzero biases too
  cell = make_cell(cell_name, D, H)
  ours = convert.from_flax(cell, fparams, kind)
  want_carry, want_y = _flax_run(lambda c, xt: flax_cell.apply({"params": fparams}, c, xt), c0, x)
  carry, y = unroll(cell, ours, x, impl="scan")
  np.testing.assert_allclose(y, want_y, **TOL)
  np.testing.assert_allclose(cell.hidden(carry), _ours_from_flax_carry(kind, want_carry), **TOL)
  if kind.endswith("LSTMCell"):
    np.testing.assert_allclose(carry.c, want_carry[0], **TOL)
  _assert_tree_equal(convert.to_flax(cell, ours, kind), jax.tree.map(np.asarray, fparams))
  mine = _random_params(cell)
  _assert_tree_equal(convert.from_flax(cell, convert.to_flax(cell, mine, kind), kind), mine)


def test_flax_bad_input():
  cell = make_cell("lstm", D, H)
  fparams = convert.to_flax(cell, cell.init(jax.random.key(0)), "LSTMCell")
  del fparams["hf"]["bias"]
  with pytest.raises(ValueError, match=r"missing key 'hf/bias' \(expected shape \(5,\)\)"):
    convert.from_flax(cell, fparams, "LSTMCell")
  with pytest.raises(ValueError, match=r"maps to our GRU"):
    convert.from_flax(cell, fparams, "GRUCell")
  with pytest.raises(ValueError, match=r"kind: must be one of"):
    convert.from_flax(cell, fparams, "LSTM")


# ----------------------------------------------------------------------------- Flax NNX

NNX = {"LSTMCell": ("lstm", nnx.LSTMCell), "OptimizedLSTMCell": ("lstm", nnx.OptimizedLSTMCell),
       "GRUCell": ("gru", nnx.GRUCell), "SimpleCell": ("rnn", nnx.SimpleCell)}


@pytest.mark.parametrize("kind", list(NNX))
def test_flax_nnx_cells(kind):
  cell_name, cls = NNX[kind]
  module = cls(D, H, rngs=nnx.Rngs(4))
  state = nnx.state(module, nnx.Param)
  keys = iter(jax.random.split(jax.random.key(5), 32))
  state = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(next(keys), a.shape), state)
  nnx.update(module, state)
  cell = make_cell(cell_name, D, H)
  ours = convert.from_nnx(cell, module)
  x = _x(2)
  c0 = module.initialize_carry((B, D), nnx.Rngs(0))
  want_carry, want_y = _flax_run(module, c0, x)
  carry, y = unroll(cell, ours, x, impl="scan")
  np.testing.assert_allclose(y, want_y, **TOL)
  np.testing.assert_allclose(cell.hidden(carry), _ours_from_flax_carry(kind, want_carry), **TOL)
  # Round trip through a fresh module: the same parameters, exactly.
  mine = _random_params(cell)
  if kind == "GRUCell":
    mine["b_hn"] = np.zeros_like(mine["b_hn"])             # NNX's GRUCell has no recurrent bias
  fresh = convert.to_nnx(cell, mine, cls(D, H, rngs=nnx.Rngs(6)))
  _assert_tree_equal(convert.from_nnx(cell, fresh), mine)


def test_nnx_gru_refuses_a_recurrent_candidate_bias():
  cell = make_cell("gru", D, H)
  with pytest.raises(ValueError, match=r"b_hn"):
    convert.to_nnx(cell, _random_params(cell), nnx.GRUCell(D, H, rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match=r"expected a Flax NNX cell"):
    convert.from_nnx(cell, nnx.Linear(D, H, rngs=nnx.Rngs(0)))


# ----------------------------------------------------------------------------- Keras 3

@pytest.fixture(autouse=False)
def keras_broadcasts():
  """Keras's own code broadcasts freely; the suite's strict rank promotion is for our code."""
  with jax.numpy_rank_promotion("allow"):
    yield


def _keras_layer(kind, reset_after, seed):
  keras.utils.set_random_seed(seed)
  if kind == "LSTM":
    layer = keras.layers.LSTM(H, return_sequences=True, return_state=True)
  else:
    layer = keras.layers.GRU(H, return_sequences=True, return_state=True, reset_after=reset_after)
  layer.build((B, T, D))
  rng = np.random.default_rng(seed)
  layer.set_weights([w + 0.3 * rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()])
  return layer


@pytest.mark.usefixtures("keras_broadcasts")
@pytest.mark.parametrize("kind,reset_after", [("LSTM", None), ("GRU", True), ("GRU", False)])
def test_keras_layers(kind, reset_after):
  layer = _keras_layer(kind, reset_after, seed=7)
  cell = make_cell("lstm" if kind == "LSTM" else ("gru" if reset_after else "gru_reset_before"), D, H)
  ours = convert.from_keras(cell, layer)
  x = _x(3)
  out = layer(x)
  want_y, want_h = np.asarray(out[0]), np.asarray(out[1])
  carry, y = unroll(cell, ours, x, impl="scan")
  np.testing.assert_allclose(y, want_y, **TOL)
  np.testing.assert_allclose(cell.hidden(carry), want_h, **TOL)
  if kind == "LSTM":
    np.testing.assert_allclose(carry.c, np.asarray(out[2]), **TOL)
  # Keras -> ours -> Keras is exact (the reset-after GRU's bias rows are kept apart).
  for got, want in zip(convert.to_keras(cell, ours), layer.get_weights()):
    if kind == "GRU" and reset_after and got.ndim == 2 and got.shape[0] == 2:
      np.testing.assert_allclose(got.sum(0)[:2 * H], want.sum(0)[:2 * H], rtol=1e-6)   # z, r: the sums
      np.testing.assert_array_equal(got[:, 2 * H:], want[:, 2 * H:])                   # h: both rows
    else:
      np.testing.assert_array_equal(got, want)
  mine = _random_params(cell)
  if kind == "GRU" and not reset_after:
    mine["b_hn"] = np.zeros_like(mine["b_hn"])   # the reset-before form folds b_hn into b on export
  _assert_tree_equal(convert.from_keras(cell, convert.to_keras(cell, mine)), mine)
  # Export into a fresh layer: Keras now computes what we compute.
  fresh = _keras_layer(kind, reset_after, seed=8)
  convert.to_keras(cell, mine, fresh)
  out = fresh(x)
  np.testing.assert_allclose(unroll(cell, mine, x, impl="scan")[1], np.asarray(out[0]), **TOL)


@pytest.mark.usefixtures("keras_broadcasts")
def test_keras_bad_input():
  layer = _keras_layer("GRU", True, seed=1)
  before = make_cell("gru_reset_before", D, H)
  with pytest.raises(ValueError, match=r"layer.reset_after: expected False"):
    convert.from_keras(before, layer)
  with pytest.raises(ValueError, match=r"\['bias'\]: expected shape \(15,\), got \(2, 15\)"):
    convert.from_keras(before, layer.get_weights())
  with pytest.raises(ValueError, match=r"does not map to our LSTM"):
    convert.from_keras(make_cell("lstm", D, H), layer)
