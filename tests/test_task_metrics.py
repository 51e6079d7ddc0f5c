"""recurrent.tasks.base.argmax_hits against NumPy's argmax (first index on ties), ties and -inf included."""

import jax.numpy as jnp
import numpy as np
import pytest

from recurrent.tasks.base import argmax_hits, token_metrics


@pytest.mark.parametrize("V", [1, 2, 7, 300])
def test_argmax_hits_equals_numpy_argmax(V):
  rng = np.random.default_rng(V)
  logits = rng.integers(-3, 3, size=(6, 50, V)).astype(np.float32)  # few values: many ties
  logits[0, :10] = rng.normal(size=(10, V))                              # no ties
  logits[1, :5] = -np.inf                                                # all -inf rows
  logits[2] = np.where(rng.random((50, V)) < 0.3, -np.inf, logits[2])   # some -inf
  targets = rng.integers(0, V, size=(6, 50))
  targets[3] = np.argmax(logits[3], -1)                                  # every row a hit
  expect = np.argmax(logits, -1) == targets
  got = np.asarray(argmax_hits(jnp.asarray(logits), jnp.asarray(targets)))
  np.testing.assert_array_equal(got, expect)
  assert expect.any() and (V == 1 or not expect.all())  # V = 1: every row a hit
  np.testing.assert_array_equal(np.asarray(argmax_hits(jnp.asarray(logits[:, 0]), jnp.asarray(targets[:, 0]))),
                                expect[:, 0])  # [B, V] as well as [B, T, V]


def test_token_metrics_accuracy_counts_first_index_ties_and_skips_padding():
  logits = jnp.array([[[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [5.0, 0.0, 0.0], [0.0, 0.0, 9.0]]])
  targets = jnp.array([[0, 2, 0, 1]])            # hit (tie, first), miss (tie, second), hit, miss
  mask = jnp.array([[True, True, True, False]])  # the last is padding
  _, m = token_metrics(logits, targets, mask)
  assert (int(m["accuracy"][0]), int(m["accuracy"][1])) == (2, 3)
