"""Unrolling: masking, reverse, bidirectional, stacks, transformations and bad input."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrent import Layer, make_cell, make_stack, reverse_padded, unroll
from recurrent.nn import RNN

B, T, D, H = 4, 6, 3, 5
CELL_NAMES = ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before"]
LENGTHS = np.array([6, 3, 1, 0])


def setup(name, seed=0):
  cell = make_cell(name, D, H)
  params = cell.init(jax.random.key(seed))
  xs = jax.random.normal(jax.random.key(seed + 1), (B, T, D))
  return cell, params, xs


def hidden(cell, carry):
  return np.asarray(cell.hidden(carry))


@pytest.mark.parametrize("name", CELL_NAMES)
def test_scan_equals_python_loop_over_step(name):
  cell, params, xs = setup(name)
  carry_scan, ys_scan = unroll(cell, params, xs)
  carry = cell.initial_carry((B,))
  ys = []
  for t in range(T):
    carry, y = cell(params, carry, xs[:, t])
    ys.append(y)
  np.testing.assert_allclose(ys_scan, jnp.stack(ys, 1), atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), carry_scan, carry)


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("reverse", [False, True])
def test_padding_changes_nothing(name, reverse):
  """Each padded sequence gives what the trimmed sequence gives alone, whatever the padding holds."""
  cell, params, xs = setup(name)
  garbage = 100.0 * jax.random.normal(jax.random.key(9), xs.shape)
  mask = (np.arange(T)[None, :] < LENGTHS[:, None])[..., None]
  xs_padded = jnp.where(mask, xs, garbage)
  carry, ys = unroll(cell, params, xs_padded, lengths=LENGTHS, reverse=reverse)
  for b, L in enumerate(LENGTHS):
    c_b, y_b = unroll(cell, params, xs[b:b + 1, :L], reverse=reverse)
    np.testing.assert_allclose(ys[b, :L], y_b[0], atol=1e-5)
    np.testing.assert_array_equal(ys[b, L:], 0.0)
    np.testing.assert_allclose(hidden(cell, carry)[b], hidden(cell, c_b)[0], atol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_reverse_with_lengths_equals_reversing_each_trimmed_sequence(name):
  cell, params, xs = setup(name)
  _, ys = unroll(cell, params, xs, lengths=LENGTHS, reverse=True)
  for b, L in enumerate(LENGTHS):
    _, y_fw = unroll(cell, params, xs[b:b + 1, :L][:, ::-1])
    np.testing.assert_allclose(ys[b, :L], np.asarray(y_fw[0])[::-1], atol=1e-5)


def test_reverse_padded_is_an_involution_and_keeps_padding():
  x = jnp.arange(B * T, dtype=jnp.float32).reshape(B, T, 1)
  r = reverse_padded(x, LENGTHS)
  np.testing.assert_array_equal(r[0, :, 0], x[0, ::-1, 0])
  np.testing.assert_array_equal(r[1, :, 0], [8, 7, 6, 9, 10, 11])
  np.testing.assert_array_equal(reverse_padded(r, LENGTHS), x)


def test_final_carry_is_last_valid_step_and_initial_carry_is_used():
  cell, params, xs = setup("lstm")
  c0 = jax.tree.map(lambda z: z + 0.3, cell.initial_carry((B,)))
  carry, ys = unroll(cell, params, xs, lengths=LENGTHS, initial_carry=c0)
  np.testing.assert_allclose(carry.h[1], ys[1, 2], atol=1e-6)
  np.testing.assert_allclose(carry.h[3], 0.3)  # length 0 keeps the initial carry
  _, ys_zero = unroll(cell, params, xs, lengths=LENGTHS)
  assert np.abs(np.asarray(ys[0] - ys_zero[0])).max() > 1e-4


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional_equals_forward_joined_with_reversed(merge):
  cell = make_cell("gru", D, H)
  layer = Layer(cell, is_bidirectional=True, merge=merge)
  params = layer.init(jax.random.key(0))
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  (c_fw, c_bw), ys = layer.apply(params, xs, LENGTHS)
  _, y_fw = unroll(cell, params["fw"], xs, LENGTHS)
  c_bw_ref, y_bw = unroll(cell, params["bw"], xs, LENGTHS, reverse=True)
  want = jnp.concatenate([y_fw, y_bw], -1) if merge == "concat" else y_fw + y_bw
  np.testing.assert_allclose(ys, want, atol=1e-6)
  np.testing.assert_allclose(c_bw, c_bw_ref, atol=1e-6)
  assert layer.output_size == ys.shape[-1]
  # The two directions have separate weights.
  assert np.abs(np.asarray(params["fw"]["W_h"] - params["bw"]["W_h"])).max() > 1e-3


def test_stack_residual_dropout_and_sizes():
  stack = make_stack("lstm", D, (H, H, 2), dropout=0.5, residual=True)
  params = stack.init(jax.random.key(0))
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  carries, ys = stack.apply(params, xs, LENGTHS)
  assert ys.shape == (B, T, 2) and len(carries) == 3
  # Deterministic without an rng; different with dropout on.
  _, ys2 = stack.apply(params, xs, LENGTHS)
  np.testing.assert_array_equal(ys, ys2)
  _, ys_drop = stack.apply(params, xs, LENGTHS, rng=jax.random.key(3))
  assert np.abs(np.asarray(ys_drop - ys)).max() > 1e-4
  np.testing.assert_array_equal(np.asarray(ys_drop)[3], 0.0)  # padding stays zero
  # Residual: layer 2 (H -> H) adds its input; check against the layers run by hand.
  _, h1 = stack.layers[0].apply(params[0], xs, LENGTHS)
  _, h2 = stack.layers[1].apply(params[1], h1, LENGTHS)
  _, h3 = stack.layers[2].apply(params[2], h2 + h1, LENGTHS)
  np.testing.assert_allclose(ys, h3, atol=1e-6)


def test_jit_grad_vmap():
  cell, params, xs = setup("lstm")
  lengths = jnp.asarray(LENGTHS)

  def loss(params, xs, lengths):
    _, ys = unroll(cell, params, xs, lengths)
    return jnp.sum(ys ** 2)

  g = jax.jit(jax.grad(loss))(params, xs, lengths)
  assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(g))
  # vmap over a leading axis of several batches equals running each.
  xs2 = jnp.stack([xs, 2 * xs])
  out = jax.vmap(lambda x: unroll(cell, params, x, lengths)[1])(xs2)
  np.testing.assert_allclose(out[1], unroll(cell, params, 2 * xs, lengths)[1], atol=1e-6)


def test_gradient_is_causal():
  """Output at t depends on inputs up to t only (forward), from t on (reverse)."""
  cell, params, xs = setup("gru")
  for reverse in (False, True):
    g = jax.grad(lambda x: unroll(cell, params, x, reverse=reverse)[1][0, 2].sum())(xs)
    g_t = np.abs(np.asarray(g[0])).sum(-1)
    dead = g_t[3:] if not reverse else g_t[:2]
    live = g_t[:3] if not reverse else g_t[2:]
    assert (dead == 0).all() and (live > 0).all()


def test_flax_module_matches_pure_functions():
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  model = RNN(cell="lstm", hidden_sizes=(H, 2), bidirectional=True, dropout=0.3)
  variables = model.init(jax.random.key(0), xs, LENGTHS)
  carries, ys = model.apply(variables, xs, LENGTHS)
  stack = make_stack("lstm", D, (H, 2), bidirectional=True, dropout=0.3)
  _, ys_ref = stack.apply(variables["params"]["stack"], xs, LENGTHS)
  np.testing.assert_allclose(ys, ys_ref, atol=1e-6)
  for impl, remat in (("scan", 0), ("auto", 2)):
    _, ys_impl = RNN(cell="lstm", hidden_sizes=(H, 2), bidirectional=True, impl=impl,
                     remat=remat).apply(variables, xs, LENGTHS)
    np.testing.assert_allclose(ys_impl, ys_ref, atol=1e-5)
  _, ys_drop = model.apply(variables, xs, LENGTHS, deterministic=False,
                           rngs={"dropout": jax.random.key(2)})
  assert np.abs(np.asarray(ys_drop - ys)).max() > 1e-4


@pytest.mark.parametrize("lengths,match", [
    (np.array([6, 3, -1, 0]), r"lengths: must be >= 0, got a length of -1"),
    (np.array([7, 3, 1, 0]), r"lengths: must be <= the time axis T=6, got a length of 7"),
    (np.array([6, 3]), r"lengths: expected shape \[B\]=\(4,\)"),
    (np.array([6.0, 3, 1, 0]), r"lengths: expected integers"),
])
def test_bad_lengths(lengths, match):
  cell, params, xs = setup("gru")
  with pytest.raises(ValueError, match=match):
    unroll(cell, params, xs, lengths=lengths)


def test_bad_input_size_and_rank():
  cell, params, xs = setup("lstm")
  with pytest.raises(ValueError, match=r"xs: last axis must be input_size=3, got shape \(4, 6, 2\)"):
    unroll(cell, params, xs[..., :2])
  with pytest.raises(ValueError, match=r"xs: expected a batch-major \[B, T, D\] array"):
    unroll(cell, params, xs[0])


def _fails(match, fn, *args, **kwargs):
  """``fn`` raises a ValueError matching ``match`` while tracing, before the scan would fail."""
  with pytest.raises(ValueError) as error:
    jax.eval_shape(lambda: fn(*args, **kwargs))
  first_line = str(error.value).splitlines()[0]  # JAX appends a note on its filtered traceback
  assert re.search(match, first_line), first_line


def test_a_carry_of_another_batch_or_layout_fails_naming_it():
  """Before: "add got incompatible shapes for broadcasting: (4, 20), (2, 20)" from inside the scan."""
  cell, params, xs = setup("lstm")
  _fails(r"^initial_carry\.h: expected shape \(4, 5\) = \[B=4, H=5\].*, got \(2, 5\)$",
         unroll, cell, params, xs, initial_carry=cell.initial_carry((2,)))
  _fails(r"^initial_carry: expected LSTMCarry\(h=\(4, 5\), c=\(4, 5\)\), got an array of shape \(4, 5\)",
         unroll, cell, params, xs, initial_carry=jnp.zeros((B, H)))
  _fails(r"^initial_carry: expected LSTMCarry\(h=\(4, 5\), c=\(4, 5\)\), got \(\(4, 5\), \(4, 5\)\)",
         unroll, cell, params, xs, initial_carry=tuple(cell.initial_carry((B,))))


@pytest.mark.parametrize("impl", ["scan", "hoisted"])
def test_params_of_another_shape_fail_naming_the_entry(impl):
  """Before: "dot_general requires contracting dimensions to have the same shape" or a KeyError."""
  cell, params, xs = setup("gru")
  wider = make_cell("gru", D, H + 1).init(jax.random.key(0))
  _fails(r"^params\['W_h'\]: expected shape \(5, 15\) \(GRU with D=3, H=5\), got \(6, 18\)$",
         unroll, cell, wider, xs, impl=impl)
  _fails(r"^params\['W_x'\]: expected shape \(3, 15\) \(GRU with D=3, H=5\), got \(2, 15\)$",
         unroll, cell, make_cell("gru", 2, H).init(jax.random.key(0)), xs, impl=impl)
  _fails(r"^params: missing \['b_hn'\], expected shape \(5,\)$",
         unroll, cell, {k: v for k, v in params.items() if k != "b_hn"}, xs, impl=impl)


def test_a_stack_names_the_layer_and_the_carry_it_was_given():
  stack = make_stack("lstm", D, (H, H), bidirectional=True)
  params = stack.init(jax.random.key(0))
  xs = jnp.ones((B, T, D))
  cell = stack.layers[0].cell
  bad = [dict(params[0]), params[1]]
  bad[0]["bw"] = dict(bad[0]["bw"], W_h=jnp.zeros((H, 3 * H)))
  _fails(r"^params\[0\]\['bw'\]\['W_h'\]: expected shape \(5, 20\) \(layer 0: LSTM with D=3, "
         r"H=5\), got \(5, 15\)$", stack.apply, bad, xs)
  _fails(r"^initial_carries\[1\]: a bidirectional layer takes a \(forward, backward\) pair of "
         r"carries, got LSTMCarry$", stack.apply, params, xs,
         initial_carries=[None, cell.initial_carry((B,))])
  _fails(r"^initial_carries\[0\]\[1\]\.h: expected shape \(4, 5\) = \[B=4, H=5\].*got \(3, 5\)$",
         stack.apply, params, xs, initial_carries=[(None, cell.initial_carry((3,))), None])
  # the Flax module reaches the same checks (Flax itself compares its parameters with the init's)
  module = RNN(cell="lstm", hidden_sizes=(H, H), bidirectional=True)
  _fails(r"^initial_carries\[0\]\[0\]\.h: expected shape \(4, 5\) = \[B=4, H=5\]", module.apply,
         {"params": {"stack": params}}, xs, initial_carries=[(cell.initial_carry((2,)), None), None])


def test_stack_step_checks_its_input_and_carries():
  stack = make_stack("gru", D, (H, H), highway=True)
  params = stack.init(jax.random.key(0))
  _fails(r"^x: expected shape \[\.\.\., D=3\], got \(4, 2\)$", stack.step, params,
         stack.initial_carries((B,)), jnp.ones((B, 2)))
  _fails(r"^carries\[1\]: expected shape \(4, 5\) = \[B=4, H=5\].*got \(2, 5\)$", stack.step,
         params, stack.initial_carries((B,))[:1] + stack.initial_carries((2,))[1:], jnp.ones((B, D)))
  bad = {"layers": params["layers"], "highway": [None, {"W_T": jnp.zeros((H, 4)), "b_T": jnp.zeros(H)}]}
  _fails(r"^params\['highway'\]\[1\]\['W_T'\]: expected shape \(5, 5\) \(layer 1: GRU with D=5, "
         r"H=5\), got \(5, 4\)$", stack.step, bad, stack.initial_carries((B,)), jnp.ones((B, D)))


def test_bad_stack_arguments():
  with pytest.raises(ValueError, match=r"merge: must be one of"):
    make_stack("gru", D, H, bidirectional=True, merge="mean")
  with pytest.raises(ValueError, match=r"dropout: must be in \[0, 1\), got 1.5"):
    make_stack("gru", D, H, dropout=1.5)
  with pytest.raises(ValueError, match=r"hidden_sizes\[1\]: must be an integer >= 1, got 0"):
    make_stack("gru", D, (H, 0))
  with pytest.raises(ValueError, match=r"cell: unknown cell 'transformer'"):
    make_stack("transformer", D, H)


@pytest.mark.parametrize("impl", ["scan", "hoisted"])
@pytest.mark.parametrize("garbage", [np.nan, np.inf])
def test_nonfinite_padding_reaches_neither_values_nor_gradients(impl, garbage):
  """Lengths [10, 4, 7] with NaN (or Inf) at a padded position: outputs and gradients stay finite and equal."""
  cell = make_cell("lstm", D, H)
  params = cell.init(jax.random.key(0))
  lengths = jnp.array([10, 4, 7])
  xs = jax.random.normal(jax.random.key(1), (3, 10, D))
  dirty = xs.at[1, 8].set(garbage).at[2, 9].set(-garbage)

  def loss(p, x, reverse):
    carry, ys = unroll(cell, p, x, lengths, reverse=reverse, impl=impl)
    return jnp.sum(ys ** 2) + jnp.sum(carry.c)

  for reverse in (False, True):
    clean = jax.value_and_grad(loss, argnums=(0, 1))(params, xs, reverse)
    got = jax.value_and_grad(loss, argnums=(0, 1))(params, dirty, reverse)
    assert all(bool(jnp.all(jnp.isfinite(l))) for l in jax.tree.leaves(got))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 clean[0], got[0])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 clean[1][0], got[1][0])


def test_traced_lengths_out_of_range_are_clipped():
  """Under jit lengths cannot be checked: above T acts as T, below 0 as 0 (documented in unroll)."""
  cell, params, xs = setup("gru")
  f = jax.jit(lambda lengths, reverse: unroll(cell, params, xs, lengths, reverse=reverse),
              static_argnums=1)
  for reverse in (False, True):
    c_bad, y_bad = f(jnp.array([T + 5, -3, 2, T]), reverse)
    c_ok, y_ok = f(jnp.array([T, 0, 2, T]), reverse)
    assert bool(jnp.all(jnp.isfinite(y_bad)))
    np.testing.assert_array_equal(y_bad, y_ok)
    np.testing.assert_array_equal(c_bad, c_ok)


@pytest.mark.parametrize("connection", ["plain", "residual", "highway"])
def test_stack_step_equals_apply_step_by_step(connection):
  """T calls of Stack.step give Stack.apply's outputs and carries: one definition of the layer rules."""
  stack = make_stack("lstm", D, (H, H, H), residual=connection == "residual",
                     highway=connection == "highway")
  params = stack.init(jax.random.key(0))
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  carries0 = [jax.tree.map(lambda z: z + 0.5, c) for c in stack.initial_carries((B,))]
  finals, ys = stack.apply(params, xs, initial_carries=carries0)
  carries, steps = carries0, []
  for t in range(T):
    carries, y = stack.step(params, carries, xs[:, t])
    steps.append(y)
  np.testing.assert_allclose(jnp.stack(steps, 1), ys, rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), carries, finals)


def test_highway_connection_against_numpy():
  """y = T * H(x) + (1 - T) * x, T = sigma(x W_T + b_T), on the layers whose sizes match; b_T starts at -2."""
  stack = make_stack("gru", D, (H, H), highway=True)
  params = stack.init(jax.random.key(0))
  assert params["highway"][0] is None                            # D != H: no gate on layer 0
  np.testing.assert_array_equal(params["highway"][1]["b_T"], -2.0)
  params["highway"][1]["b_T"] = params["highway"][1]["b_T"] + 1.7  # non-trivial gate
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  _, ys = stack.apply(params, xs, LENGTHS)
  layers = params["layers"]
  _, h1 = stack.layers[0].apply(layers[0], xs, LENGTHS)
  _, f2 = stack.layers[1].apply(layers[1], h1, LENGTHS)
  h1, f2 = np.asarray(h1, np.float64), np.asarray(f2, np.float64)
  W, b = np.asarray(params["highway"][1]["W_T"], np.float64), np.asarray(params["highway"][1]["b_T"], np.float64)
  gate = 1.0 / (1.0 + np.exp(-(h1 @ W + b)))
  want = gate * f2 + (1.0 - gate) * h1
  want = np.where((np.arange(T)[None, :] < LENGTHS[:, None])[..., None], want, 0.0)
  np.testing.assert_allclose(ys, want, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="residual, highway"):
    make_stack("gru", D, (H, H), residual=True, highway=True)


def test_a_bidirectional_stack_cannot_step():
  stack = make_stack("gru", D, (H,), bidirectional=True)
  with pytest.raises(ValueError, match="bidirectional layer"):
    stack.initial_carries((B,))


def test_the_stack_runs_as_built_and_apply_arguments_override():
  """unroll/impl/remat given to make_stack change how apply runs, not what it computes."""
  xs = jax.random.normal(jax.random.key(3), (3, 9, 4))
  lengths = jnp.array([9, 5, 0])
  plain = make_stack("lstm", 4, (6, 6), highway=True)
  built = make_stack("lstm", 4, (6, 6), highway=True, unroll=3, impl="scan", remat=4)
  assert (built.unroll, built.impl, built.remat) == (3, "scan", 4)
  params = plain.init(jax.random.key(0))
  loss = lambda stack, p: jnp.sum(stack.apply(p, xs, lengths)[1] ** 2)
  want = jax.value_and_grad(lambda p: loss(plain, p))(params)
  got = jax.value_and_grad(lambda p: loss(built, p))(params)
  np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), got[1], want[1])
  with pytest.raises(ValueError, match="impl"):
    built.apply(params, xs, impl="fused")
  with pytest.raises(ValueError, match="impl"):
    make_stack("lstm", 4, 6, impl="fast")
  with pytest.raises(ValueError, match="remat"):
    make_stack("lstm", 4, 6, remat=-2)
  with pytest.raises(ValueError, match="unroll"):
    make_stack("lstm", 4, 6, unroll=0)
