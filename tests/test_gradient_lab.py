"""The gradient lab end to end on its smoke config, and the long-range tasks under the Task contract."""

import csv
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import gradient_decay as gd_config
from experiments import outputs
from recurrent import gradient_lab
from recurrent.data import long_range as lr
from recurrent.tasks import get_task


def _rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_smoke_run_writes_figure_csvs_and_table(tmp_path):
  config = gd_config.get_config("smoke")
  lines = []
  out = outputs.run_gradient_lab(config, tmp_path, log=lines.append)
  assert out["figure"] == tmp_path / "gradient_decay.png"
  assert out["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert any("steps/s" in line or "compiled" in line for line in lines)   # progress and rate
  rows = _rows(tmp_path / "gradient_by_distance.csv")
  S, T, C = config.num_seeds, config.task.delay, len(config.checkpoint_steps)
  assert len(rows) == len(config.cells) * S * C * T
  summary = _rows(tmp_path / "summary.csv")
  assert len(summary) == len(config.cells) * S * C
  # The horizon in summary.csv is the first distance where the CSV's relative norm is <= 1/1000.
  for s in summary:
    rel = [float(r["grad_norm_relative"]) for r in rows
           if (r["arm"], r["seed"], r["step"]) == (s["arm"], s["seed"], s["step"])]
    assert len(rel) == T and rel[0] == pytest.approx(1.0)
    fallen = [k for k, v in enumerate(rel) if v <= 1e-3]
    assert float(s["horizon_grad"]) == (fallen[0] if fallen else math.inf)
    assert float(s["baseline"]) == pytest.approx(1 / 6)
    assert math.isfinite(float(s["eval_loss"]))
  for cell in config.cells:
    assert cell in out["table"]
  assert len(_rows(tmp_path / "train_log.csv")) == len(config.cells) * S * 2


def test_config_variants_and_checks(tmp_path):
  config = gd_config.get_config("exploding")
  assert [a.label for a in gradient_lab.arms(config)] == [
      "rnn, no clip (sigma_max 1.5)", "rnn, clip 1 (sigma_max 1.5)"]
  with pytest.raises(AttributeError):
    config.not_a_field = 1                                 # locked: a typo fails
  with pytest.raises(ValueError, match="variant"):
    gd_config.get_config("nope")
  config = gd_config.get_config("smoke")
  config.checkpoint_steps = (0, 4)
  with pytest.raises(ValueError, match="checkpoint_steps"):
    gradient_lab.run(config)


@pytest.mark.parametrize("name", ["adding", pytest.param("copy_memory", marks=pytest.mark.slow),
                                  "first_token"])
def test_task_modules_follow_the_task_contract_and_train(name):
  config = importlib.import_module(f"configs.{name}").get_config("smoke")
  with config.unlocked():
    config.task.delay = 6
  task = get_task(config)
  params = task.init_params(jax.random.key(0))
  batch = task.train_batch(3)
  again = task.train_batch(3)
  np.testing.assert_array_equal(np.asarray(batch["inputs"]), np.asarray(again["inputs"]))
  assert not np.array_equal(np.asarray(task.train_batch(4)["inputs"]), np.asarray(batch["inputs"]))
  assert len(list(task.eval_batches())) == config.task.num_eval_batches
  loss, metrics = task.loss_fn(params, batch, None)
  total, count = metrics["loss"]
  assert float(total / count) == pytest.approx(float(loss), rel=1e-6)
  # A few Adam steps on one batch lower its loss: the task trains.
  tx = optax.adam(1e-2)
  opt = tx.init(params)
  grad_fn = jax.jit(jax.value_and_grad(lambda p: task.loss_fn(p, batch, jax.random.key(1))[0]))
  first = None
  for _ in range(config.num_steps):
    value, grads = grad_fn(params)
    first = value if first is None else first
    updates, opt = tx.update(grads, opt, params)
    params = optax.apply_updates(params, updates)
  assert float(grad_fn(params)[0]) < float(first)


def test_task_losses_score_the_baseline_for_the_memoryless_predictor():
  from ml_collections import ConfigDict
  cfg = ConfigDict({"delay": 7, "num_symbols": 5, "embed_size": 4})
  T = cfg.delay
  cm = importlib.import_module("recurrent.tasks.copy_memory").problem(cfg)
  batch = cm.sample(jax.random.key(0), 64)
  logits = np.full((64, T + 20, 10), -1e4, np.float32)
  logits[:, :T + 10, 0] = 0.0                          # certain blank
  logits[:, T + 10:, 1:9] = 0.0                        # uniform over the 8 symbols
  loss, _ = cm.loss(jnp.asarray(logits), batch)
  assert float(loss) == pytest.approx(lr.copy_memory_baseline(T), rel=1e-5)
  assert cm.baseline == pytest.approx(lr.copy_memory_baseline(T))
  ft = importlib.import_module("recurrent.tasks.first_token").problem(cfg)
  batch = ft.sample(jax.random.key(1), 64)
  logits = np.full((64, T + 1, 6), -1e4, np.float32)
  logits[..., 1:] = 0.0                                # uniform over the 5 symbols
  assert float(ft.loss((jnp.asarray(logits), None), batch)[0]) == pytest.approx(math.log(5), rel=1e-5)
  ad = importlib.import_module("recurrent.tasks.adding").problem(cfg)
  batch = ad.sample(jax.random.key(2), 20_000)
  assert float(ad.loss(jnp.ones((20_000, 1)), batch)[0]) == pytest.approx(1 / 6, rel=0.03)
