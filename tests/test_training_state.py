"""The pure train step against NumPy written from the equations: SGD on least squares, norms, clipping, NaN guard."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from recurrent.tasks.base import Task
from recurrent.training import state as state_lib
from recurrent.training.optim import make_optimizer


def linear_task(scale=1.0):
  """Least squares y = x w + b; loss = mean squared error (times ``scale``)."""
  def loss_fn(params, batch, rng):
    err = batch["x"] @ params["w"] + params["b"][None, :] - batch["y"]
    sse = jnp.sum(err ** 2) * scale
    return sse / err.size, {"loss": (sse, err.size)}
  init = lambda rng: {"w": jax.random.normal(rng, (3, 2)), "b": jnp.zeros((2,))}
  return Task(init_params=init, loss_fn=loss_fn, train_batch=None, eval_batches=None,
              num_tokens=lambda b: b["x"].shape[0])


def optim(**kw):
  c = ml_collections.ConfigDict(dict(name="sgd", learning_rate=0.1, schedule="constant",
                                     warmup_steps=0, momentum=0.0, weight_decay=0.0,
                                     clip_norm=0.0, clip_value=0.0))
  c.update(kw)
  return c


def numpy_grads(params, batch):
  w, b = np.asarray(params["w"], np.float64), np.asarray(params["b"], np.float64)
  x, y = np.asarray(batch["x"], np.float64), np.asarray(batch["y"], np.float64)
  err = x @ w + b - y
  n = err.size
  return {"w": 2 * x.T @ err / n, "b": 2 * err.sum(0) / n}, (err ** 2).mean()


def batch(seed=0):
  r = np.random.default_rng(seed)
  return {"x": r.normal(size=(5, 3)).astype(np.float32), "y": r.normal(size=(5, 2)).astype(np.float32)}


@pytest.mark.parametrize("clip_norm", [0.0, 0.5])
def test_sgd_step_and_norms_match_numpy(clip_norm):
  task, opt = linear_task(), optim(clip_norm=clip_norm)
  tx = make_optimizer(opt, 10)
  state = state_lib.init_state(task, tx, seed=3)
  b = batch()
  g, loss = numpy_grads(state.params, b)
  gnorm = np.sqrt(sum((v ** 2).sum() for v in g.values()))
  factor = min(1.0, clip_norm / gnorm) if clip_norm else 1.0
  want = {k: np.asarray(state.params[k]) - 0.1 * factor * g[k] for k in g}
  new, m = jax.jit(state_lib.make_train_step(task, tx, opt))(state, b)
  assert int(new.step) == 1 and int(new.nonfinite_step) == -1
  for k in want:
    np.testing.assert_allclose(new.params[k], want[k], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(m["loss"], loss, rtol=1e-5)
  np.testing.assert_allclose(m["grad_norm"], gnorm, rtol=1e-5)
  np.testing.assert_allclose(m["grad_norm_clipped"], gnorm * factor, rtol=1e-5)
  np.testing.assert_allclose(m["update_norm"], 0.1 * factor * gnorm, rtol=1e-5)
  pnorm = np.sqrt(sum((want[k] ** 2).sum() for k in want))
  np.testing.assert_allclose(m["param_norm"], pnorm, rtol=1e-5)
  if clip_norm:
    assert gnorm > clip_norm  # the clipping branch was exercised


def test_clip_value_norm_matches_numpy():
  task, opt = linear_task(scale=50.0), optim(clip_value=0.3)
  tx = make_optimizer(opt, 10)
  state = state_lib.init_state(task, tx, seed=1)
  g, _ = numpy_grads(state.params, batch())
  clipped = np.sqrt(sum((np.clip(50 * v, -0.3, 0.3) ** 2).sum() for v in g.values()))
  _, m = state_lib.make_train_step(task, tx, opt)(state, batch())
  np.testing.assert_allclose(m["grad_norm_clipped"], clipped, rtol=1e-5)
  assert float(m["grad_norm"]) > clipped


def test_nonfinite_step_keeps_params_and_names_step():
  task, opt = linear_task(), optim()
  tx = make_optimizer(opt, 10)
  step = jax.jit(state_lib.make_train_step(task, tx, opt))
  state = state_lib.init_state(task, tx, seed=0)
  state, _ = step(state, batch(0))
  good = jax.tree.map(np.asarray, state.params)
  bad = batch(1)
  bad["y"][0, 0] = np.nan
  state, m = step(state, bad)
  assert np.isnan(m["loss"]) and int(state.nonfinite_step) == 1 and int(state.step) == 2
  for k in good:
    np.testing.assert_array_equal(state.params[k], good[k])
  state, _ = step(state, batch(2))  # later finite steps do not hide the first bad one
  assert int(state.nonfinite_step) == 1


def test_rng_is_fold_in_of_step():
  seen = []
  def loss_fn(params, batch, rng):
    u = jax.random.uniform(rng, ())
    return jnp.sum(params["w"]) * 0.0 + u, {"loss": (u, 1)}
  task = Task(init_params=lambda r: {"w": jnp.zeros((2,))}, loss_fn=loss_fn, train_batch=None,
              eval_batches=None, num_tokens=lambda b: 1)
  opt = optim()
  tx = make_optimizer(opt, 10)
  state = state_lib.init_state(task, tx, seed=7)
  step = jax.jit(state_lib.make_train_step(task, tx, opt))
  for _ in range(3):
    state, m = step(state, {})
    seen.append(float(m["loss"]))
  want = [float(jax.random.uniform(jax.random.fold_in(jax.random.key(7), s), ())) for s in range(3)]
  np.testing.assert_allclose(seen, want, rtol=0)


def test_warmup_longer_than_the_run_fails_naming_the_field():
  with pytest.raises(ValueError, match=r"optim.warmup_steps.*num_steps=60, got 100"):
    make_optimizer(optim(schedule="warmup_cosine", warmup_steps=100), 60)


def test_adam_with_weight_decay_is_l2_and_adamw_is_decoupled():
  """"adamw" equals optax.adamw; "adam" with weight_decay equals Adam on g + wd * p (and differs)."""
  import optax
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  grads = [{"w": jnp.array([0.5, 0.1, -0.3])}, {"w": jnp.array([-0.2, 0.4, 0.1])}]

  def run(tx):
    p, s = params, tx.init(params)
    for g in grads:
      u, s = tx.update(g, s, p)
      p = optax.apply_updates(p, u)
    return p["w"]

  wd, lr = 0.1, 0.01
  ours_w = run(make_optimizer(optim(name="adamw", learning_rate=lr, weight_decay=wd), 10))
  np.testing.assert_allclose(ours_w, run(optax.adamw(lr, weight_decay=wd)), rtol=1e-6)
  ours_l2 = run(make_optimizer(optim(name="adam", learning_rate=lr, weight_decay=wd), 10))
  l2 = optax.chain(optax.add_decayed_weights(wd), optax.adam(lr))
  np.testing.assert_allclose(ours_l2, run(l2), rtol=1e-6)
  assert np.abs(np.asarray(ours_l2 - ours_w)).max() > 1e-4


def test_decay_steps_sets_the_schedule_length():
  tx = make_optimizer(optim(name="sgd", learning_rate=1.0, schedule="cosine", decay_steps=4), 100)
  from recurrent.training.optim import make_schedule
  sched = make_schedule(optim(schedule="cosine", learning_rate=1.0, decay_steps=4), 100)
  np.testing.assert_allclose([sched(s) for s in (0, 2, 4, 50)], [1.0, 0.5, 0.0, 0.0], atol=1e-6)
  assert tx is not None


@pytest.mark.parametrize("clip_value", [0.0, 0.3])
def test_logged_norms_equal_the_norms_of_jax_grad_and_the_optax_chain(clip_value):
  """The norms the step derives cheaply equal those of the gradient from jax.grad, clipped by
  the optax transformations themselves (the clipped copy the step no longer builds)."""
  import optax
  task, opt = linear_task(scale=50.0), optim(clip_norm=0.5, clip_value=clip_value)
  tx = make_optimizer(opt, 10)
  state = state_lib.init_state(task, tx, seed=2)
  b = batch()
  g = jax.grad(lambda p: task.loss_fn(p, b, None)[0])(state.params)
  clipped = g
  if clip_value:
    clipped, _ = optax.clip(clip_value).update(clipped, optax.EmptyState())
  clipped, _ = optax.clip_by_global_norm(0.5).update(clipped, optax.EmptyState())
  new, m = jax.jit(state_lib.make_train_step(task, tx, opt))(state, b)
  np.testing.assert_allclose(m["grad_norm"], optax.tree.norm(g), rtol=1e-6)
  np.testing.assert_allclose(m["grad_norm_clipped"], optax.tree.norm(clipped), rtol=1e-6)
  assert float(optax.tree.norm(clipped)) < float(m["grad_norm"])   # clipping was active
  delta = jax.tree.map(lambda a, b: a - b, new.params, state.params)
  np.testing.assert_allclose(m["update_norm"], optax.tree.norm(delta), rtol=1e-5)
  np.testing.assert_allclose(m["update_norm"], 0.1 * optax.tree.norm(clipped), rtol=1e-5)
  np.testing.assert_allclose(m["param_norm"], optax.tree.norm(new.params), rtol=1e-6)


def test_nonfinite_gradient_logs_a_nan_clipped_norm():
  task, opt = linear_task(), optim(clip_norm=0.5)
  tx = make_optimizer(opt, 10)
  bad = batch(1)
  bad["y"][0, 0] = np.inf
  _, m = jax.jit(state_lib.make_train_step(task, tx, opt))(state_lib.init_state(task, tx, 0), bad)
  assert not np.isfinite(float(m["grad_norm"])) and not np.isfinite(float(m["grad_norm_clipped"]))
