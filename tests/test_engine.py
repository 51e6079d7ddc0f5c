"""The recurrence engine (impl="hoisted") and remat against the reference plain scan.

``recurrent.engine`` runs every cell's own ``post`` under a custom JVP rule;
``impl="scan"`` is ``cell.step`` under ``lax.scan`` differentiated by JAX, itself
tested against a Python loop and NumPy. Values, reverse-mode gradients,
forward-mode derivatives and second derivatives must agree for every cell and
option, with padding, reverse and a given initial carry.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from recurrent import engine, make_cell, make_stack, unroll
from recurrent.cells.base import Cell, expand_like
from recurrent.nn import RNN

B, T, D, H = 3, 7, 4, 5
LENGTHS = jnp.array([7, 3, 0])
CELLS = {"lstm": {}, "lstm_peephole": {"peephole": True}, "gru": {}, "gru_reset_before": {},
         "rnn_tanh": {}, "rnn_relu": {}, "min_gru": {}, "min_lstm": {}}
SETTINGS = {"plain": {}, "lengths": {"lengths": LENGTHS},
            "reverse": {"lengths": LENGTHS, "reverse": True}}


def make(name, **kw):
  return make_cell(name.replace("_peephole", ""), D, H, **{**CELLS[name], **kw})


def loss_and_grads(cell, params, xs, carry0, weights, **kwargs):
  """A loss that reads every output and the final carry, and its gradients w.r.t. all inputs."""
  def loss(p, x, c0):
    carry, ys = unroll(cell, p, x, initial_carry=c0, **kwargs)
    return jnp.sum(ys * weights) + sum(jnp.sum(jnp.sin(l)) for l in jax.tree.leaves(carry))
  return jax.value_and_grad(loss, argnums=(0, 1, 2))(params, xs, carry0)


def setup(name, dtype=jnp.float32):
  cell = make(name, param_dtype=dtype)
  params = cell.init(jax.random.key(0))
  # non-zero peepholes and candidate bias, so that their gradients are tested too
  params = {k: (v + 0.3 if k.startswith("p_") or k == "b_hn" else v) for k, v in params.items()}
  xs = jax.random.normal(jax.random.key(1), (B, T, D), dtype)
  carry0 = jax.tree.map(lambda z: jax.random.normal(jax.random.key(2), z.shape, z.dtype),
                        cell.initial_carry((B,)))
  weights = jax.random.normal(jax.random.key(3), (B, T, H), dtype)
  return cell, params, xs, carry0, weights


def assert_trees_close(a, b, atol=2e-5, rtol=1e-4):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("name", list(CELLS))
def test_hoisted_equals_scan(name, setting):
  cell, params, xs, carry0, weights = setup(name)
  ref = loss_and_grads(cell, params, xs, carry0, weights, impl="scan", **SETTINGS[setting])
  got = loss_and_grads(cell, params, xs, carry0, weights, impl="hoisted", **SETTINGS[setting])
  assert_trees_close(ref, got)


@pytest.mark.parametrize("name", ["lstm", "gru_reset_before", "min_gru"])
def test_forward_mode_and_second_derivatives_through_the_default_path(name):
  """jax.jvp, jax.jacfwd and a Hessian-vector product through impl='auto' equal the scan's."""
  cell, params, xs, carry0, weights = setup(name)

  def loss(p, x, impl):
    carry, ys = unroll(cell, p, x, LENGTHS, initial_carry=carry0, impl=impl)
    return jnp.sum(ys * weights) + sum(jnp.sum(jnp.sin(l)) for l in jax.tree.leaves(carry))

  tangent = jax.tree.map(lambda v: jnp.cos(jnp.arange(v.size, dtype=v.dtype)).reshape(v.shape),
                         (params, xs))
  for impl in ("auto", "hoisted"):
    assert_trees_close(jax.jvp(lambda p, x: loss(p, x, "scan"), (params, xs), tangent),
                       jax.jvp(lambda p, x: loss(p, x, impl), (params, xs), tangent))
  f = lambda x, impl: unroll(cell, params, x, impl=impl)[1][:, -1]
  assert_trees_close(jax.jacfwd(f)(xs, "scan"), jax.jacfwd(f)(xs, "auto"))
  hvp = lambda impl: jax.jvp(jax.grad(lambda p: loss(p, xs, impl)), (params,), (tangent[0],))[1]
  assert_trees_close(hvp("scan"), hvp("auto"), atol=1e-4)


@pytest.mark.parametrize("name", ["lstm_peephole", "gru_reset_before", "rnn_tanh", "min_lstm"])
def test_hoisted_matches_finite_differences_in_float64_to_second_order(name):
  with jax.enable_x64(True):
    cell, params, xs, carry0, weights = setup(name, jnp.float64)

    def loss(p, x, c0):
      carry, ys = unroll(cell, p, x, LENGTHS, initial_carry=c0, reverse=True, impl="hoisted")
      return jnp.sum(ys * weights) + sum(jnp.sum(jnp.sin(l)) for l in jax.tree.leaves(carry))

    check_grads(jax.jit(loss), (params, xs, carry0), order=2, modes=("fwd", "rev"), eps=1e-5,
                atol=1e-5, rtol=1e-5)


def test_the_recurrent_weight_gradient_leaves_the_backward_loop():
  """No loop of the gradient carries an [H, 4H] accumulator: dW_h is one matmul after the scans."""
  cell, params, xs, carry0, weights = setup("lstm")
  loss = lambda p, impl: jnp.sum(unroll(cell, p, xs, LENGTHS, impl=impl)[1] * weights)
  jaxpr = jax.make_jaxpr(jax.grad(lambda p: loss(p, "hoisted")))(params)
  scans = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
  assert len(scans) >= 2  # forward and backward
  for e in scans:
    carries = e.params["jaxpr"].in_avals[e.params["num_consts"]:][:e.params["num_carry"]]
    assert all(a.shape != params["W_h"].shape for a in carries), carries
  ref = jax.make_jaxpr(jax.grad(lambda p: loss(p, "scan")))(params)
  ref_scans = [e for e in ref.jaxpr.eqns if e.primitive.name == "scan"]
  carried = [a.shape for e in ref_scans
             for a in e.params["jaxpr"].in_avals[e.params["num_consts"]:][:e.params["num_carry"]]]
  assert params["W_h"].shape in carried  # the plain scan's backward loop does carry one


def test_only_the_parameters_post_reads_enter_the_loop():
  def keys(name):
    cell, params, xs, carry0, _ = setup(name)
    u = None if cell.recurrent_kernel(params) is None else jnp.zeros((B, cell.recurrent_kernel(params).shape[1]))
    return engine._post_param_keys(cell, params, carry0, jnp.zeros((B, cell.gate_size)), u)
  assert keys("lstm") == ()
  assert keys("lstm_peephole") == ("p_f", "p_i", "p_o")
  assert keys("gru") == ("b_hn",)
  assert keys("gru_reset_before") == ("W_h", "b_hn")
  assert keys("min_gru") == ()


@dataclasses.dataclass(frozen=True)
class CoupledGate(Cell):
  """A user's own cell, unknown to the registry: h_t = f h_{t-1} + (1 - f) tanh(n) * s,
  [f, n] = x W_x + h_{t-1} W_h + b, with a learned scale s [H]."""

  num_gates = 2

  def init(self, key):
    w_x, w_h, b = self.init_kernels(key)
    return {"W_x": w_x, "W_h": w_h, "b": b, "s": jnp.full((self.hidden_size,), 1.5)}

  def post(self, params, carry, xp, u):
    f, n = jnp.split(xp + u, 2, axis=-1)
    f = jax.nn.sigmoid(f)
    h = f * carry + (1.0 - f) * jnp.tanh(n) * expand_like(params["s"], carry)
    return h, h


def test_a_users_own_cell_gets_the_engine_stacks_and_the_flax_module():
  cell = CoupledGate(D, H)
  params = cell.init(jax.random.key(0))
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  carry0 = jax.random.normal(jax.random.key(2), (B, H))
  weights = jax.random.normal(jax.random.key(3), (B, T, H))
  for setting in SETTINGS.values():
    assert_trees_close(loss_and_grads(cell, params, xs, carry0, weights, impl="scan", **setting),
                       loss_and_grads(cell, params, xs, carry0, weights, impl="hoisted", **setting))
  # a Python loop of the cell's own step, from its equations
  h, ys = carry0, []
  for t in range(T):
    z = xs[:, t] @ params["W_x"] + params["b"][None, :] + h @ params["W_h"]
    f = jax.nn.sigmoid(z[:, :H])
    h = f * h + (1 - f) * jnp.tanh(z[:, H:]) * params["s"][None, :]
    ys.append(h)
  np.testing.assert_allclose(unroll(cell, params, xs, initial_carry=carry0)[1], jnp.stack(ys, 1),
                             rtol=1e-5, atol=1e-6)
  stack = make_stack(cell, D, (H, H))
  assert all(type(layer.cell) is CoupledGate for layer in stack.layers)
  model = RNN(cell=cell, hidden_sizes=(H, H))
  variables = model.init(jax.random.key(0), xs)
  _, y = model.apply(variables, xs)
  _, y_pure = stack.apply(variables["params"]["stack"], xs)
  np.testing.assert_allclose(y, y_pure, rtol=1e-6)


@pytest.mark.parametrize("name, chunk", [("lstm", 3), ("gru", 10), ("min_gru", 7)])
def test_remat_equals_scan(name, chunk):
  """Chunks that divide T, that do not (padded with masked steps), and larger than T."""
  cell, params, xs, carry0, weights = setup(name)
  kwargs = SETTINGS["reverse"] if chunk == 3 else SETTINGS["plain"]
  ref = loss_and_grads(cell, params, xs, carry0, weights, impl="scan", **kwargs)
  got = loss_and_grads(cell, params, xs, carry0, weights, remat=chunk, **kwargs)
  assert_trees_close(ref, got)


def test_unroll_and_bfloat16_weights():
  """unroll > 1 changes nothing; bf16 weights keep float32 carries and track the scan."""
  cell, params, xs, carry0, weights = setup("lstm")
  ref = loss_and_grads(cell, params, xs, carry0, weights, impl="scan")
  assert_trees_close(ref, loss_and_grads(cell, params, xs, carry0, weights, impl="hoisted",
                                         unroll=3))
  cell16 = make_cell("lstm", D, H, param_dtype=jnp.bfloat16)
  p16 = jax.tree.map(lambda w: w.astype(jnp.bfloat16), params)
  (l_s, g_s), (l_f, g_f) = (loss_and_grads(cell16, p16, xs, carry0, weights, impl=i)
                            for i in ("scan", "hoisted"))
  carry, _ = unroll(cell16, p16, xs, impl="hoisted")
  assert carry.h.dtype == jnp.float32 and carry.c.dtype == jnp.float32
  assert g_f[0]["W_h"].dtype == jnp.bfloat16
  np.testing.assert_allclose(l_f, l_s, rtol=1e-2)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=0.1, atol=0.05), g_s, g_f)


def test_auto_is_the_engine_on_cpu_and_old_names_say_what_they_became():
  cell, params, xs, carry0, weights = setup("lstm_peephole")
  _, y_auto = unroll(cell, params, xs, LENGTHS)
  _, y_hoisted = unroll(cell, params, xs, LENGTHS, impl="hoisted")
  np.testing.assert_array_equal(y_auto, y_hoisted)
  with pytest.raises(ValueError, match="'fused' is now called 'hoisted'"):
    unroll(cell, params, xs, impl="fused")
  with pytest.raises(ValueError, match="associative"):
    unroll(cell, params, xs, impl="associative")


def test_stack_passes_impl_and_remat():
  stack = make_stack("gru", D, (H, H), bidirectional=True, residual=True)
  params = stack.init(jax.random.key(0))
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  f = lambda p, **kw: jnp.sum(stack.apply(p, xs, LENGTHS, **kw)[1] ** 2)
  ref = jax.value_and_grad(f)(params, impl="scan")
  assert_trees_close(ref, jax.value_and_grad(f)(params, impl="hoisted", remat=2))


def test_remat_reduces_compiled_memory():
  """The whole point of remat: the compiled gradient keeps far fewer bytes alive."""
  cell = make_cell("lstm", 8, 32)
  params = cell.init(jax.random.key(0))
  xs = jnp.ones((4, 512, 8))

  def peak(remat):
    f = jax.grad(lambda p, x: jnp.sum(unroll(cell, p, x, remat=remat)[1] ** 2))
    m = jax.jit(f).lower(params, xs).compile().memory_analysis()
    return m.temp_size_in_bytes

  assert peak(32) < peak(0) / 4


@pytest.mark.parametrize("impl, remat", [("bogus", 0), ("scan", -1), ("scan", True)])
def test_bad_impl_and_remat(impl, remat):
  cell, params, xs, _, _ = setup("gru")
  with pytest.raises(ValueError, match="impl" if impl == "bogus" else "remat"):
    unroll(cell, params, xs, impl=impl, remat=remat)


def test_bfloat16_cells_initialise_directly():
  """The orthogonal blocks are drawn in float32 and cast (LAPACK has no bf16 QR)."""
  for name in ("lstm", "gru", "rnn_tanh"):
    params = make_cell(name, D, H, param_dtype=jnp.bfloat16).init(jax.random.key(0))
    assert all(v.dtype == jnp.bfloat16 for v in params.values())
    w = np.asarray(params["W_h"][:, :H], np.float32)
    np.testing.assert_allclose(w.T @ w, np.eye(H), atol=0.05)


@pytest.mark.parametrize("name", list(CELLS))
def test_cells_that_declare_post_reads_sum_read_only_the_sum(name):
  """The engine feeds dxp and W's part of du in as one input for these cells; that is exact only if
  post(xp, u) depends on xp + u alone. Checked on random values, split both ways."""
  cell, params, _, carry0, _ = setup(name)
  if not cell.post_reads_sum:
    return
  k1, k2 = jax.random.split(jax.random.key(4))
  xp = jax.random.normal(k1, (B, cell.gate_size))
  u = jax.random.normal(k2, (B, cell.gate_size))
  want = cell.post(params, carry0, xp, u)
  for a, b in ((xp + u, jnp.zeros_like(u)), (jnp.zeros_like(xp), xp + u), (xp - 1.0, u + 1.0)):
    assert_trees_close(cell.post(params, carry0, a, b), want, atol=1e-6)
  assert make("lstm").post_reads_sum and make("rnn_tanh").post_reads_sum
  assert not make("gru").post_reads_sum
