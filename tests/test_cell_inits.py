"""Initialisations chosen by cell spec (``"lstm:chrono=200"``): chrono (Tallec & Ollivier 2018), the
IRNN (Le et al. 2015), forget-gate bias, orthogonal vs Glorot W_h; the spec parser's errors; and
each new cell trained a few steps through the long-range tasks and the harness.
"""

import jax
import numpy as np
import pytest
from scipy import stats

from recurrent import make_cell
from recurrent.cells import parse_cell

H = 1000   # units: enough draws for the distribution tests (Glorot W_h: no 1000 x 1000 QR)


def test_lstm_chrono_biases_are_log_uniform_and_the_input_gate_mirrors_them():
  T_max = 200
  b = np.asarray(make_cell("lstm:chrono=200,recurrent_init=glorot", 3, H).init(jax.random.key(0))["b"], np.float64)
  b_i, b_f, b_g, b_o = np.split(b, 4)
  assert b_f.min() >= 0.0 and b_f.max() <= np.log(T_max - 1) + 1e-6
  # exp(b_f) ~ U[1, T_max - 1]: a Kolmogorov-Smirnov test against that law
  assert stats.kstest(np.exp(b_f), stats.uniform(1, T_max - 2).cdf).pvalue > 1e-3
  np.testing.assert_allclose(b_i, -b_f, atol=1e-6)
  np.testing.assert_array_equal(b_g, 0.0)
  np.testing.assert_array_equal(b_o, 0.0)
  # the memory time 1 / (1 - sigma(b_f)) = 1 + e^b_f spreads over [2, T_max]
  tau = 1.0 / (1.0 - 1.0 / (1.0 + np.exp(-b_f)))
  assert 2.0 - 1e-6 <= tau.min() and tau.max() <= T_max + 1e-3 and np.median(tau) > T_max / 3


def test_gru_chrono_sets_only_the_update_gate():
  b = np.asarray(make_cell("gru:chrono=50,recurrent_init=glorot", 3, H).init(jax.random.key(1))["b"], np.float64)
  b_r, b_z, b_n = np.split(b, 3)
  assert stats.kstest(np.exp(b_z), stats.uniform(1, 48).cdf).pvalue > 1e-3
  np.testing.assert_array_equal(b_r, 0.0)
  np.testing.assert_array_equal(b_n, 0.0)


def test_chrono_leaves_the_weights_as_they_were():
  plain = make_cell("lstm", 3, 8).init(jax.random.key(0))
  chrono = make_cell("lstm:chrono=30", 3, 8).init(jax.random.key(0))
  np.testing.assert_array_equal(plain["W_h"], chrono["W_h"])
  np.testing.assert_array_equal(plain["W_x"], chrono["W_x"])


def test_forget_bias_from_the_spec():
  b = np.asarray(make_cell("lstm:forget_bias=0.0", 3, 4).init(jax.random.key(0))["b"])
  np.testing.assert_array_equal(b, 0.0)
  b = np.asarray(make_cell("lstm:forget_bias=3", 3, 4).init(jax.random.key(0))["b"])
  np.testing.assert_array_equal(b[4:8], 3.0)


def test_irnn_is_relu_with_identity_recurrence_zero_bias_and_small_inputs():
  cell = make_cell("irnn", 3, 64)
  assert cell.activation == "relu"
  p = cell.init(jax.random.key(0))
  np.testing.assert_array_equal(p["W_h"], np.eye(64))
  np.testing.assert_array_equal(p["b"], 0.0)
  assert 0.0007 < np.std(np.asarray(p["W_x"])) < 0.0013      # N(0, 0.001^2)


def test_orthogonal_and_glorot_recurrent_inits_differ_as_they_should():
  Hs = 256
  w_o = np.asarray(make_cell("rnn", 3, Hs).init(jax.random.key(0))["W_h"], np.float64)
  w_g = np.asarray(make_cell("rnn:recurrent_init=glorot", 3, Hs).init(jax.random.key(0))["W_h"],
                   np.float64)
  np.testing.assert_allclose(np.linalg.svd(w_o, compute_uv=False), 1.0, atol=1e-4)
  # Glorot uniform: entries U(+-sqrt(6 / 2H)), variance 1/H; a random square matrix of that
  # variance has singular values spread over (0, 2) (Marchenko-Pastur), not all 1
  assert abs(np.var(w_g) * Hs - 1.0) < 0.02
  assert np.abs(w_g).max() <= np.sqrt(3.0 / Hs) + 1e-7
  sv = np.linalg.svd(w_g, compute_uv=False)
  assert sv.max() > 1.8 and sv.min() < 0.1


@pytest.mark.parametrize("spec,match", [
    ("lstn", r"unknown cell 'lstn'.*'lru'.*'rg_lru'"),
    ("lstm:forget_bais=1", r"LSTM has no field 'forget_bais'.*forget_bias"),
    ("lstm:forget_bias=high", r"forget_bias must be float, got 'high'"),
    ("lstm:chrono", r"expected field=value, got 'chrono'"),
    ("lstm:chrono=2", r"chrono: must be 0 \(off\) or an integer T_max >= 3"),
    ("lstm:chrono=50,forget_bias=2", r"forget_bias: chrono=50 sets the forget-gate bias"),
    ("rnn:recurrent_init=xavier", r"recurrent_init must be one of \['glorot', 'identity'"),
    ("lru:r_min=0.99,r_max=0.9", r"r_min, r_max"),
    ("lstm:peephole=yes", r"peephole must be true or false"),
])
def test_bad_cell_specs_fail_naming_the_problem(spec, match):
  with pytest.raises(ValueError, match=match):
    make_cell(spec, 3, 4)


def test_spec_values_take_the_fields_types():
  assert parse_cell("lru:state_size=7,r_min=0.5,max_phase=3") == (
      "lru", {"state_size": 7, "r_min": 0.5, "max_phase": 3.0})
  assert parse_cell("lstm:peephole=true") == ("lstm", {"peephole": True})
  assert make_cell("lru:state_size=7", 3, 4).init(jax.random.key(0))["C_re"].shape == (7, 4)


@pytest.mark.parametrize("task,cell", [
    ("adding", "rg_lru"), pytest.param("copy_memory", "lru", marks=pytest.mark.slow), ("adding", "irnn"),
    pytest.param("adding", "gru:chrono=6", marks=pytest.mark.slow)])
def test_new_cells_train_a_few_steps_on_the_long_range_tasks(task, cell):
  import importlib

  from recurrent.tasks import get_task
  from smoke_steps import train_steps

  config = importlib.import_module(f"configs.{task}").get_config("smoke")
  with config.unlocked():
    config.task.delay = 6
    config.model.cell = cell
  _, losses = train_steps(get_task(config), config, 4)
  assert losses[-1] < losses[0]


@pytest.mark.slow
def test_a_cell_spec_runs_through_the_harness(tmp_path):
  """configs/adding.py:smoke with --config.model.cell=lru, through train_and_evaluate."""
  from configs import adding
  from recurrent.training.loop import train_and_evaluate

  config = adding.get_config("smoke")
  with config.unlocked():
    config.task.delay = 6
    config.model.cell = "lru:r_min=0.5"
  final = train_and_evaluate(config, tmp_path)
  assert final["step"] == config.num_steps and np.isfinite(final["eval"]["loss"])
