"""Eval metric averaging: float64 sums on the host, a metric with count 0 left out (not a crash, not NaN)."""

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest

from configs import sine
from recurrent.tasks import get_task
from recurrent.tasks.base import Task
from recurrent.tasks.base import Evaluator
from recurrent.training import loop, parallel
from recurrent.training.checkpoint import Checkpoints
from recurrent.training.metrics import mean_metrics, read_jsonl, window_means

BIG = 2.0 ** 24  # float32 spacing is 2 from here on: adding 1.0 to it is lost



def trainer_evaluator(task, num_devices, max_batches):
  """``params -> metrics`` of the held-out split as the trainer evaluates it."""
  mesh = parallel.make_mesh(num_devices)
  evaluator = Evaluator.for_task(task, place=lambda b: parallel.place_eval_batch(b, mesh),
                                 max_batches=max_batches)
  return lambda params: evaluator(params, task.eval_batches())

def test_mean_metrics_sums_in_float64_where_float32_loses_the_small_terms():
  batches = [{"nll": (np.float32(BIG), np.float32(1))}] + [{"nll": (np.float32(1), np.float32(1))}] * 5
  assert mean_metrics(batches)["nll"] == (2 ** 24 + 5) / 6
  f32_total = np.float32(0)
  for b in batches:                       # the accumulation this replaces: every +1 is rounded away
    f32_total = f32_total + b["nll"][0]
  assert f32_total == np.float32(BIG)
  counts = [{"acc": (np.float32(1), np.float32(BIG))}] + [{"acc": (np.float32(1), np.float32(1))}] * 4
  assert mean_metrics(counts)["acc"] == 5 / (2 ** 24 + 4)   # large counts too


def test_mean_metrics_matches_exact_sums_over_random_batches():
  rng = np.random.default_rng(0)
  totals = rng.uniform(0, 1e6, size=(50, 2)).astype(np.float32)
  counts = rng.integers(0, 3000, size=(50, 2)).astype(np.float32)
  batches = [{"a": (t[0], c[0]), "b": (t[1], c[1])} for t, c in zip(totals, counts)]
  got = mean_metrics(batches)
  for j, name in enumerate("ab"):
    want = math.fsum(float(t) for t in totals[:, j]) / math.fsum(float(c) for c in counts[:, j])
    assert got[name] == pytest.approx(want, rel=1e-15)


def test_a_metric_with_count_zero_is_left_out():
  batches = [{"acc": (3.0, 4.0), "changed": (0.0, 0.0), "rare": (0.0, 0.0)},
             {"acc": (1.0, 4.0), "changed": (0.0, 0.0), "rare": (2.0, 5.0)}]
  assert mean_metrics(batches) == {"acc": 0.5, "rare": 0.4}
  assert mean_metrics([]) == {}


def fake_task(xs, ms):
  """Eval batches x_B (masks m_B): metrics big = mean x, masked = mean of x where m."""
  def loss_fn(params, batch, rng):
    x, m = batch["x"] * params["w"], batch["m"]
    return jnp.mean(x), {"big": (jnp.sum(x), jnp.float32(x.shape[0])),
                         "masked": (jnp.sum(x * m), jnp.sum(m))}
  batches = [{"x": np.asarray(x, np.float32), "m": np.asarray(m, np.float32)} for x, m in zip(xs, ms)]
  return Task(init_params=lambda rng: {"w": jnp.float32(1)}, loss_fn=loss_fn,
              train_batch=lambda step: batches[0], eval_batches=lambda: iter(batches),
              num_tokens=lambda b: b["x"].shape[0])


def test_evaluator_averages_in_float64_and_leaves_out_count_zero():
  xs = [[BIG, 0.0]] + [[1.0, 1.0]] * 4     # each batch sum is exact in float32; their running sum is not
  ms = [[0.0, 0.0]] * 5
  params = {"w": jnp.float32(1)}
  evaluator = trainer_evaluator(fake_task(xs, ms), 0, 0)
  assert evaluator(params) == {"big": (2 ** 24 + 8) / 10}
  ms[2] = [1.0, 0.0]                         # one masked element in one batch
  evaluator = trainer_evaluator(fake_task(xs, ms), 0, 3)
  assert evaluator(params) == {"big": (2 ** 24 + 4) / 6, "masked": 1.0}


def test_training_runs_when_the_eval_metric_has_count_zero(tmp_path, monkeypatch):
  """No crash: the run finishes, the metric is absent from the records, no checkpoint is ranked best."""
  def with_empty_metric(config):
    task = get_task(config)
    def loss_fn(params, batch, rng):
      loss, metrics = task.loss_fn(params, batch, rng)
      count = jnp.float32(0.0 if rng is None else 1.0)   # counted in training, never in evaluation
      return loss, {**metrics, "never": (count * loss, count)}
    return dataclasses.replace(task, loss_fn=loss_fn, eval_metric="never")

  monkeypatch.setattr(loop, "get_task", with_empty_metric)
  final = loop.train_and_evaluate(sine.get_config("smoke"), tmp_path)
  assert final["step"] == 6 and "never" not in final["eval"] and "mse" in final["eval"]
  assert final["best"] == {"never": None}
  records = read_jsonl(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in records if r["split"] == "eval"] == [3, 6]
  assert all("never" not in r for r in records if r["split"] == "eval")
  assert all(r["never"] > 0 for r in records if r["split"] == "train")
  ckpt = Checkpoints(tmp_path / "checkpoints", 3, "never", "min", read_only=True)
  assert ckpt.all_steps() == [3, 6] and ckpt.best_step() is None and final["best_step"] is None
  ckpt.close()
  assert loop.evaluate(sine.get_config("smoke"), tmp_path, "best")["step"] == 6   # falls back to the latest


def test_window_means_average_each_scalar_over_the_interval_and_skip_nans():
  steps = [{"loss": 1.0, "acc": float("nan"), "gone": float("nan")},
           {"loss": 2.0, "acc": 0.5, "gone": float("nan")},
           {"loss": 6.0, "acc": 0.25, "gone": float("nan")}]
  assert window_means(steps) == {"loss": 3.0, "acc": 0.375}
  assert window_means([]) == {}
  # the loop's non-logging steps return the loss alone: the others are the logging step's values
  steps = [{"loss": 1.0}, {"loss": 2.0}, {"loss": 6.0, "acc": 0.25, "gone": float("nan")}]
  assert window_means(steps) == {"loss": 3.0, "acc": 0.25}


def test_logged_train_loss_is_the_mean_over_the_log_interval(tmp_path):
  """metrics.jsonl at steps 3 and 6 (log_every 3) = the mean of the per-step losses of a manual run
  with every metric on every step; the norms are the logging step's, the norm of its parameters; the
  loop's parameters (quiet steps 1, 2, 4, 5) are bitwise the manual run's."""
  import jax

  from recurrent.training import state as state_lib
  from recurrent.training.optim import make_optimizer
  config = sine.get_config("smoke")
  config.log_every, config.num_steps = 3, 6
  loop.train_and_evaluate(config, tmp_path)
  task = get_task(config)
  tx = make_optimizer(config.optim, config.num_steps)
  state = state_lib.init_state(task, tx, config.seed)
  step_fn = jax.jit(state_lib.make_train_step(task, tx, config.optim))
  losses, per_step, param_norms = [], [], []
  for step in range(config.num_steps):
    state, m = step_fn(state, task.train_batch(step))
    losses.append(float(m["loss"]))
    per_step.append(jax.device_get(m))
    param_norms.append(np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2)
                                   for x in jax.tree.leaves(state.params))))
  records = {r["step"]: r for r in read_jsonl(tmp_path / "metrics.jsonl") if r.get("split") == "train"}
  logged = {s: r["loss"] for s, r in records.items()}
  np.testing.assert_allclose([logged[3], logged[6]], [np.mean(losses[:3]), np.mean(losses[3:])],
                             rtol=1e-5)
  assert abs(logged[6] - losses[5]) > 1e-6  # not the last step alone
  for s in (3, 6):  # the norms: step s's own, not means over the interval
    np.testing.assert_allclose(records[s]["param_norm"], param_norms[s - 1], rtol=1e-6)
    for k in ("grad_norm", "grad_norm_clipped", "update_norm"):
      np.testing.assert_allclose(records[s][k], float(per_step[s - 1][k]), rtol=1e-6)
  assert abs(records[6]["grad_norm"] - np.mean([float(m["grad_norm"]) for m in per_step[3:]])) > 1e-6
  _, params = loop.restore_params(config, tmp_path, "latest")
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(a, b)
