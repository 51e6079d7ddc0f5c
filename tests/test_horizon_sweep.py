"""The horizon-vs-length driver on a made-up trainer whose answers are known in closed form, the
diagonal-Jacobian decay of a linear cell against its eigenvalues, and the real driver on its smoke
config (slow)."""

import csv
import math

import jax
import numpy as np
import pytest

from configs import horizon_sweep as hs_config
from experiments import outputs
from recurrent import horizon_sweep
from recurrent.models import SequenceClassifier

RATE = {"rnn": 0.5, "lstm:chrono=T": 0.999}      # per-step gradient factor of each made-up cell
REACH = {"rnn": 30, "lstm:chrono=T": 1000}       # the longest T each made-up cell learns


def made_up_train(lab, problem, arm, log, jacobian, extra):
  """A stand-in for gradient_lab.train_arm with closed-form answers.

  The gradient falls by RATE per step back (so the horizon is the first k with
  RATE^k <= 1/1000); a cell learns T iff T <= REACH, its training loss falling
  linearly to 1% of the baseline by step 2T; otherwise it stays at the baseline.
  """
  assert jacobian is False and extra is None
  spec = arm.label.replace("{T}", "T")
  assert arm.cell == arm.label.replace("{T}", str(lab.task.delay))   # {T} became the delay
  T, S, N = lab.task.delay, lab.num_seeds, lab.num_steps // lab.log_every
  base = problem.baseline
  k = np.arange(T)
  grad = np.broadcast_to(RATE[spec] ** k, (2, S, T)).copy()
  steps = lab.log_every * np.arange(1, N + 1)
  learns = T <= REACH[spec]
  curve = np.maximum(0.01, 1.0 - steps / (2.0 * T)) if learns else np.ones(N)
  loss = np.broadcast_to((base * curve)[:, None], (N, S)).copy()
  final = base * curve[-1]
  return {"grad": grad, "jac": np.full_like(grad, np.nan), "eval_loss": np.full((2, S), final),
          "max_sv": np.ones((2, S)), "extra": np.zeros((2, S)), "steps": steps, "loss": loss,
          "grad_norm": np.ones((N, S))}


def test_driver_recovers_the_known_answers(tmp_path):
  config = hs_config.get_config("smoke")
  with config.unlocked():
    config.tasks = ("adding", "copy_memory")
    config.delays = (20, 40, 1200)
    config.cells = ("rnn", "lstm:chrono={T}")
    config.num_seeds = 3
    config.num_steps = 1000
    config.log_every = 50
  lines = []
  out = outputs.run_horizon_sweep(config, tmp_path, log=lines.append, train=made_up_train)
  rows = list(csv.DictReader(open(tmp_path / "sweep.csv")))
  assert len(rows) == 2 * 3 * 2 * 3
  for r in rows:
    T, spec = int(r["delay"]), r["cell"].replace("{T}", "T")
    # horizon: the first k with RATE^k <= 1e-3, or beyond T
    k_star = math.ceil(math.log(1e-3) / math.log(RATE[spec]) - 1e-9)
    want_h = k_star if k_star < T else math.inf
    assert float(r["horizon_init"]) == want_h and float(r["horizon_end"]) == want_h
    # learned: 1 - s / 2T <= 0.1 first at s = 1.8 T, rounded up to the log step; else never
    if T <= REACH[spec] and 1.8 * T <= 1000:
      assert float(r["steps_to_learn"]) == 50 * math.ceil(1.8 * T / 50)
      assert float(r["loss_over_baseline"]) == pytest.approx(0.01)
    else:
      assert math.isnan(float(r["steps_to_learn"]))
      assert float(r["loss_over_baseline"]) == pytest.approx(1.0 if T > REACH[spec] else
                                                             max(0.01, 1 - 1000 / (2 * T)))
  assert [p.name for p in out["figures"]] == ["horizon_sweep_adding.png",
                                              "horizon_sweep_copy_memory.png"]
  assert all(p.read_bytes()[:4] == b"\x89PNG" for p in out["figures"])
  assert "ETA" in lines[1]
  table = out["tables"]["adding"]
  assert "rnn" in table and ">19" in table and "10" in table


def test_config_checks_name_the_field(tmp_path):
  config = hs_config.get_config("smoke")
  with config.unlocked():
    config.cells = ("lstm:forget_bais=0",)
  with pytest.raises(ValueError, match="forget_bais"):
    horizon_sweep.run(config, train=made_up_train)
  config = hs_config.get_config("smoke")
  with config.unlocked():
    config.delays = (10, 6)
  with pytest.raises(ValueError, match="delays: must be increasing"):
    horizon_sweep.run(config, train=made_up_train)


def test_diagonal_decay_of_an_lru_is_k_log_lambda():
  """For the LRU dh_T/dh_{T-k} = lambda^k exactly: log10 |.| = k log10 |lambda| per unit."""
  T = 12
  model = SequenceClassifier(cell="lru:state_size=5", hidden_sizes=(4,), num_outputs=1)
  x = jax.random.normal(jax.random.key(0), (3, T, 2))
  params = model.init(jax.random.key(1), x)["params"]
  decay = np.asarray(horizon_sweep.diagonal_decay(model, params, {"inputs": x}), np.float64)
  nu = np.asarray(params["rnn"]["stack"][0]["nu_log"], np.float64)
  log_mod = -np.exp(nu) / np.log(10.0)                               # log10 |lambda|
  per_unit = np.arange(T)[:, None] * log_mod[None, :]
  np.testing.assert_allclose(decay[0], np.median(per_unit, -1), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(decay[1], np.percentile(per_unit, 90, -1), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_smoke_config_runs_the_real_trainer(tmp_path):
  out = outputs.run_horizon_sweep(hs_config.get_config("smoke"), tmp_path, log=lambda s: None)
  rows = list(csv.DictReader(open(tmp_path / "sweep.csv")))
  assert len(rows) == 2 * 2 * 2
  assert all(math.isfinite(float(r["loss_over_baseline"])) for r in rows)
  assert (tmp_path / "diagonal_decay_adding.png").exists()
  assert out["results"][("adding", 6, "rg_lru")]["decay"].shape == (2, 2, 2, 6)
