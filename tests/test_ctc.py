"""CTC against a NumPy forward algorithm (Graves et al. 2006) and brute-force enumeration of paths."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrent import ctc


def forward_nll(logp_TV: np.ndarray, labels: list[int]) -> float:
  """-log p(l|x) by the alpha recursion of Graves et al. (2006), eqs. 6-8, over l' = (b l1 b l2 ... b)."""
  ext = [0]
  for c in labels:
    ext += [c, 0]
  S, T = len(ext), len(logp_TV)
  y = np.exp(logp_TV.astype(np.float64))
  alpha = np.zeros((T, S))
  alpha[0, 0] = y[0, 0]
  if S > 1:
    alpha[0, 1] = y[0, ext[1]]
  for t in range(1, T):
    for s in range(S):
      a = alpha[t - 1, s] + (alpha[t - 1, s - 1] if s >= 1 else 0.0)
      if s >= 2 and ext[s] != 0 and ext[s] != ext[s - 2]:
        a += alpha[t - 1, s - 2]
      alpha[t, s] = a * y[t, ext[s]]
  p = alpha[T - 1, S - 1] + (alpha[T - 1, S - 2] if S > 1 else 0.0)
  return -np.log(p)


def collapse_np(path) -> tuple:
  out, prev = [], None
  for c in path:
    if c != prev and c != 0:
      out.append(int(c))
    prev = c
  return tuple(out)


def brute_force(logp_TV: np.ndarray) -> dict:
  """{labelling: p(labelling | x)} summed over all V^T paths."""
  T, V = logp_TV.shape
  probs = {}
  for path in itertools.product(range(V), repeat=T):
    p = np.exp(sum(logp_TV[t, c] for t, c in enumerate(path)).astype(np.float64))
    key = collapse_np(path)
    probs[key] = probs.get(key, 0.0) + p
  return probs


def test_ctc_loss_matches_the_forward_algorithm_with_repeats():
  rng = np.random.default_rng(0)
  B, T, V = 4, 9, 5
  logits = rng.normal(size=(B, T, V)).astype(np.float32) * 2
  labels = np.array([[1, 1, 2, 0], [3, 3, 3, 0], [2, 4, 2, 4], [1, 0, 0, 0]])
  label_len = np.array([3, 3, 4, 1])
  lengths = np.array([9, 7, 8, 3])
  nll, feasible, counted = ctc.ctc_loss(jnp.asarray(logits), jnp.asarray(lengths),
                                        jnp.asarray(labels), jnp.asarray(label_len))
  assert feasible.all() and counted.all()
  logp = np.asarray(jax.nn.log_softmax(logits, -1))
  want = [forward_nll(logp[b, :lengths[b]], list(labels[b, :label_len[b]])) for b in range(B)]
  np.testing.assert_allclose(nll, want, rtol=1e-4)


def test_ctc_loss_equals_the_sum_over_all_paths():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(1, 5, 3)).astype(np.float32)
  logp = np.asarray(jax.nn.log_softmax(logits, -1))[0]
  probs = brute_force(logp)
  for labelling in [(1,), (1, 1), (2, 1, 2), (1, 2)]:
    lab = np.array([list(labelling) + [0] * (3 - len(labelling))])
    nll, _, _ = ctc.ctc_loss(jnp.asarray(logits), jnp.array([5]), jnp.asarray(lab),
                             jnp.array([len(labelling)]))
    np.testing.assert_allclose(float(nll[0]), -np.log(probs[labelling]), rtol=1e-4)


def test_impossible_alignment_is_masked_and_reported():
  logits = jnp.zeros((3, 4, 3))
  labels = jnp.array([[1, 1, 1], [1, 2, 1], [1, 1, 0]])
  label_len = jnp.array([3, 3, 2])
  lengths = jnp.array([4, 4, 4])  # row 0 needs 5 frames (two repeats): impossible
  nll, feasible, counted = ctc.ctc_loss(logits, lengths, labels, label_len)
  assert feasible.tolist() == [False, True, True] and counted.tolist() == [False, True, True]
  assert float(nll[0]) == 0.0 and float(nll.max()) < 100.0  # never the 1e5 of log_epsilon
  assert ctc.min_frames(labels, label_len).tolist() == [5, 3, 3]
  with pytest.raises(ValueError, match="row 0 has 4 frames but its 3 labels need 5"):
    ctc.check_feasible(lengths, labels, label_len)


def test_best_path_collapses_the_argmax():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(5, 12, 4)).astype(np.float32)
  lengths = np.array([12, 10, 5, 1, 0])
  got, got_len = ctc.best_path(jnp.asarray(logits), jnp.asarray(lengths))
  for b in range(5):
    want = collapse_np(logits[b, :lengths[b]].argmax(-1))
    assert tuple(np.asarray(got[b, :got_len[b]])) == want
    assert (np.asarray(got[b, got_len[b]:]) == -1).all()


def test_prefix_beam_search_is_exact_with_a_wide_beam():
  rng = np.random.default_rng(3)
  T, V = 4, 3
  logits = rng.normal(size=(2, T, V)).astype(np.float32) * 1.5
  lengths = np.array([4, 3])
  tokens, lens, scores = jax.jit(ctc.prefix_beam_search, static_argnums=(2,))(
      jnp.asarray(logits), jnp.asarray(lengths), 32)
  for b in range(2):
    logp = np.asarray(jax.nn.log_softmax(logits[b, :lengths[b]], -1))
    probs = brute_force(logp)
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    got = {tuple(np.asarray(tokens[b, k, :lens[b, k]])): float(np.exp(scores[b, k]))
           for k in range(32) if scores[b, k] > -1e3}
    assert set(got) == set(probs)  # every labelling reachable, each once
    for lab, p in probs.items():
      np.testing.assert_allclose(got[lab], p, rtol=1e-4)
    assert tuple(np.asarray(tokens[b, 0, :lens[b, 0]])) == ranked[0][0]


def test_prefix_beam_search_beats_best_path_where_paths_split():
  # Best path says "blank blank" -> "", but "1" has more total probability (Graves 2006, sec. 3.2).
  p = np.array([[0.5, 0.4, 0.1], [0.5, 0.4, 0.1]])
  logits = jnp.log(jnp.asarray(p))[None]
  greedy, glen = ctc.best_path(logits, jnp.array([2]))
  assert int(glen[0]) == 0
  tokens, lens, scores = ctc.prefix_beam_search(logits, jnp.array([2]), 3)
  assert tokens[0, 0, :lens[0, 0]].tolist() == [1]
  np.testing.assert_allclose(np.exp(scores[0, 0]), 0.4 * 0.4 + 2 * 0.5 * 0.4, rtol=1e-5)


def test_edit_distance_and_error_rates():
  assert ctc.edit_distance([1, 2, 3], [1, 2, 3]) == 0
  assert ctc.edit_distance([1, 2, 3], [1, 3]) == 1
  assert ctc.edit_distance([1, 2, 3], [3, 2, 1]) == 2
  assert ctc.edit_distance([], [4, 4]) == 2
  assert ctc.edit_distance("kitten", "sitting") == 3
  r = ctc.error_rates([[1, 2], [3, 4, 5]], [[1, 2], [3, 5]])
  assert r == {"error_rate": 1 / 5, "utterance_accuracy": 0.5}
