"""Long-range task generators: shapes, structure, purity, and the baselines measured on generated data."""

import math

import jax
import numpy as np
import pytest

from recurrent.data import long_range as lr


def test_adding_structure_and_targets():
  batch = lr.adding(jax.random.key(0), 64, 11)
  x, y = np.asarray(batch["inputs"]), np.asarray(batch["targets"])
  assert x.shape == (64, 11, 2) and y.shape == (64,)
  marks = x[..., 1]
  assert np.all(marks.sum(1) == 2)
  first, second = np.argmax(marks[:, :5], 1), 5 + np.argmax(marks[:, 5:], 1)
  assert np.all(marks[:, :5].sum(1) == 1) and np.all(marks[:, 5:].sum(1) == 1)
  rows = np.arange(64)
  np.testing.assert_allclose(y, x[rows, first, 0] + x[rows, second, 0], rtol=1e-6)
  assert np.all((x[..., 0] >= 0) & (x[..., 0] < 1))
  again = lr.adding(jax.random.key(0), 64, 11)
  np.testing.assert_array_equal(np.asarray(again["inputs"]), x)   # a pure function of the key
  with pytest.raises(ValueError, match="delay"):
    lr.adding(jax.random.key(0), 4, 1)


def test_adding_baseline_is_what_predicting_one_scores():
  y = np.asarray(lr.adding(jax.random.key(1), 200_000, 10)["targets"], np.float64)
  sq = (y - 1.0) ** 2
  stderr = sq.std() / math.sqrt(sq.size)
  assert abs(sq.mean() - lr.adding_baseline()) < 4 * stderr
  assert abs(y.mean() - 1.0) < 4 * y.std() / math.sqrt(y.size)    # 1 is the best constant
  assert lr.adding_baseline() == pytest.approx(1 / 6)


def test_copy_memory_structure():
  T = 7
  batch = lr.copy_memory(jax.random.key(2), 16, T)
  x, y = np.asarray(batch["inputs"]), np.asarray(batch["targets"])
  assert x.shape == y.shape == (16, T + 20)
  assert np.all((x[:, :10] >= 1) & (x[:, :10] <= 8))
  assert np.all(x[:, 10:T + 9] == 0) and np.all(x[:, T + 9] == 9) and np.all(x[:, T + 10:] == 0)
  assert np.all(y[:, :T + 10] == 0)
  np.testing.assert_array_equal(y[:, T + 10:], x[:, :10])


@pytest.mark.parametrize("T", [5, 100])
def test_copy_memory_baseline_is_what_the_memoryless_predictor_scores(T):
  y = np.asarray(lr.copy_memory(jax.random.key(3), 256, T)["targets"])
  # Memoryless: P(blank) = 1 where the target is always blank, uniform over 1..8 elsewhere.
  probs = np.zeros(y.shape + (10,))
  probs[:, :T + 10, 0] = 1.0
  probs[:, T + 10:, 1:9] = 1.0 / 8
  ce = -np.log(np.take_along_axis(probs, y[..., None], -1)[..., 0]).mean()
  assert ce == pytest.approx(lr.copy_memory_baseline(T), rel=1e-12)
  assert lr.copy_memory_baseline(T) == pytest.approx(10 * math.log(8) / (T + 20))
  # And the symbols are uniform, so no other memoryless distribution does better.
  counts = np.bincount(y[:, T + 10:].ravel(), minlength=9)[1:]
  freq = counts / counts.sum()
  assert -(freq * np.log(freq)).sum() == pytest.approx(math.log(8), abs=0.01)


def test_first_token_structure_and_baseline():
  T, V = 9, 6
  batch = lr.first_token(jax.random.key(4), 100_000, T, num_symbols=V)
  x, y = np.asarray(batch["inputs"]), np.asarray(batch["targets"])
  assert x.shape == (100_000, T + 1) and y.shape == (100_000,)
  assert np.all(x[:, -1] == 0) and np.all((x[:, :-1] >= 1) & (x[:, :-1] <= V))
  np.testing.assert_array_equal(y, x[:, 0])
  # The best constant predictor (the empirical frequencies) scores the entropy, ~ ln V.
  freq = np.bincount(y, minlength=V + 1)[1:] / y.size
  best_constant = -np.log(freq[y - 1]).mean()
  assert best_constant == pytest.approx(lr.first_token_baseline(V), abs=2e-3)
  assert lr.first_token_baseline(V) == pytest.approx(math.log(V))
