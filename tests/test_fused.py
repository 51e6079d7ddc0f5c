"""The speed paths of unroll against the reference plain scan: values and gradients.

impl="fused" (hand-written backward pass) and remat=k (checkpointed chunks)
must give what impl="scan" gives, with padding, reverse and a given initial
carry; the plain scan is itself tested against a Python loop and NumPy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrent import make_cell, make_stack, unroll
from recurrent import fused

B, T, D, H = 3, 7, 4, 5
LENGTHS = jnp.array([7, 3, 0])
FUSED_CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
SETTINGS = {"plain": {}, "lengths": {"lengths": LENGTHS},
            "reverse": {"lengths": LENGTHS, "reverse": True}}


def loss_and_grads(cell, params, xs, carry0, weights, **kwargs):
  """A loss that reads every output and the final carry, and its gradients w.r.t. all inputs."""
  def loss(p, x, c0):
    carry, ys = unroll(cell, p, x, initial_carry=c0, **kwargs)
    return jnp.sum(ys * weights) + sum(jnp.sum(jnp.sin(l)) for l in jax.tree.leaves(carry))
  return jax.value_and_grad(loss, argnums=(0, 1, 2))(params, xs, carry0)


def setup(name):
  cell = make_cell(name, D, H)
  params = cell.init(jax.random.key(0))
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  carry0 = jax.tree.map(lambda z: jax.random.normal(jax.random.key(2), z.shape),
                        cell.initial_carry((B,)))
  weights = jax.random.normal(jax.random.key(3), (B, T, H))
  return cell, params, xs, carry0, weights


def assert_trees_close(a, b, atol=2e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=atol), a, b)


@pytest.mark.parametrize("name, setting", [("lstm", "plain"), ("lstm", "reverse"),
                                           ("gru", "plain"), ("gru", "reverse"),
                                           ("rnn_tanh", "lengths"), ("rnn_relu", "reverse")])
def test_fused_equals_scan(name, setting):
  cell, params, xs, carry0, weights = setup(name)
  ref = loss_and_grads(cell, params, xs, carry0, weights, impl="scan", **SETTINGS[setting])
  got = loss_and_grads(cell, params, xs, carry0, weights, impl="fused", **SETTINGS[setting])
  assert_trees_close(ref, got)


@pytest.mark.parametrize("name, chunk", [("lstm", 3), ("gru", 10), ("min_gru", 7)])
def test_remat_equals_scan(name, chunk):
  """Chunks that divide T, that do not (padded with masked steps), and larger than T."""
  cell, params, xs, carry0, weights = setup(name)
  kwargs = SETTINGS["reverse"] if chunk == 3 else SETTINGS["plain"]
  ref = loss_and_grads(cell, params, xs, carry0, weights, impl="scan", **kwargs)
  got = loss_and_grads(cell, params, xs, carry0, weights, remat=chunk, **kwargs)
  assert_trees_close(ref, got)


def test_fused_unroll_and_bfloat16_weights():
  """unroll > 1 changes nothing; bf16 weights keep float32 carries and track the scan."""
  cell, params, xs, carry0, weights = setup("lstm")
  ref = loss_and_grads(cell, params, xs, carry0, weights, impl="scan")
  assert_trees_close(ref, loss_and_grads(cell, params, xs, carry0, weights, impl="fused",
                                         unroll=3))
  cell16 = make_cell("lstm", D, H, param_dtype=jnp.bfloat16)
  p16 = jax.tree.map(lambda w: w.astype(jnp.bfloat16), params)
  (l_s, g_s), (l_f, g_f) = (loss_and_grads(cell16, p16, xs, carry0, weights, impl=i)
                            for i in ("scan", "fused"))
  carry, _ = unroll(cell16, p16, xs, impl="fused")
  assert carry.h.dtype == jnp.float32 and carry.c.dtype == jnp.float32
  assert g_f[0]["W_h"].dtype == jnp.bfloat16
  np.testing.assert_allclose(l_f, l_s, rtol=1e-2)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=0.1, atol=0.05), g_s, g_f)


def test_auto_picks_fused_where_supported_and_scan_elsewhere():
  assert fused.supports(make_cell("lstm", D, H))
  assert not fused.supports(make_cell("lstm", D, H, peephole=True))
  assert not fused.supports(make_cell("gru_reset_before", D, H))
  cell = make_cell("lstm", D, H, peephole=True)
  params = cell.init(jax.random.key(0))
  params = {**params, "p_i": jnp.ones((H,)), "p_o": -jnp.ones((H,))}
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  _, y_auto = unroll(cell, params, xs, LENGTHS)
  _, y_scan = unroll(cell, params, xs, LENGTHS, impl="scan")
  np.testing.assert_array_equal(y_auto, y_scan)
  with pytest.raises(ValueError, match="impl"):
    unroll(cell, params, xs, impl="fused")


def test_stack_passes_impl_and_remat():
  stack = make_stack("gru", D, (H, H), bidirectional=True, residual=True)
  params = stack.init(jax.random.key(0))
  xs = jax.random.normal(jax.random.key(1), (B, T, D))
  f = lambda p, **kw: jnp.sum(stack.apply(p, xs, LENGTHS, **kw)[1] ** 2)
  ref = jax.value_and_grad(f)(params, impl="scan")
  assert_trees_close(ref, jax.value_and_grad(f)(params, impl="fused", remat=2))


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
