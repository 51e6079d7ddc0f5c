"""Decoding against a NumPy reference of a tiny recurrent model and brute-force enumeration."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrent import decoding

V, H, EOS, BOS = 3, 4, 2, 0


def STEP(p, tokens_B, h_BH):
  h = jnp.tanh(p["E"].astype(jnp.float32)[tokens_B] + h_BH @ p["W"].astype(jnp.float32))
  return h @ p["U"].astype(jnp.float32) + p["c"].astype(jnp.float32)[None, :], h


# One compiled program per decoding set-up, whatever the model's weights: the weights are
# arguments of the jitted function (functools.partial objects hash by identity, closures too).
@functools.partial(jax.jit, static_argnames=("max_len", "K", "kind"))
def beam(p, init, max_len, K, kind="none", alpha=0.6):
  bos = jnp.full((init.shape[0],), BOS)
  return decoding.beam_search(functools.partial(STEP, p), init, bos, K, max_len, EOS, kind, alpha)


@functools.partial(jax.jit, static_argnames=("max_len",))
def greedy(p, init, max_len):
  bos = jnp.full((init.shape[0],), BOS)
  return decoding.greedy(functools.partial(STEP, p), init, bos, max_len, EOS)


def tiny_model(seed, eos_bias=0.0):
  """h' = tanh(E[y] + h W), logits = h' U + c: a step function and its NumPy twin."""
  r = np.random.default_rng(seed)
  E, W, U = r.normal(size=(V, H)), r.normal(size=(H, H)), 2.0 * r.normal(size=(H, V))
  c = np.zeros(V)
  c[EOS] = eos_bias

  params = {"E": E, "W": W, "U": U, "c": c}
  step_fn = functools.partial(STEP, jax.tree.map(jnp.asarray, params))

  def np_logprobs(h0_H, prefix):
    """log p(. | prefix) after feeding BOS and the prefix, in NumPy float64."""
    h = h0_H
    for y in (BOS,) + tuple(prefix):
      h = np.tanh(E[y] + h @ W)
    z = h @ U + c
    return z - z.max() - np.log(np.exp(z - z.max()).sum())

  return step_fn, np_logprobs, jax.tree.map(jnp.asarray, params)


def np_logprob(np_logprobs, h0, seq):
  return sum(np_logprobs(h0, seq[:t])[y] for t, y in enumerate(seq))


def np_greedy(np_logprobs, h0, max_len):
  seq = []
  while len(seq) < max_len:
    y = int(np.argmax(np_logprobs(h0, seq)))
    seq.append(y)
    if y == EOS:
      break
  return seq


def all_sequences(max_len):
  """Every output the decoder can produce: ended by EOS, or max_len tokens without it."""
  out = []
  for n in range(1, max_len + 1):
    for body in itertools.product([t for t in range(V) if t != EOS], repeat=n - 1):
      out.append(list(body) + [EOS])
  out += [list(s) for s in itertools.product([t for t in range(V) if t != EOS], repeat=max_len)]
  return out


def np_penalty(n, kind, alpha):
  return {"none": 1.0, "average": n, "wu": ((5 + n) / 6) ** alpha}[kind]


def h0(B, seed=1):
  return np.random.default_rng(seed).normal(size=(B, H)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_matches_numpy_loop(seed):
  step_fn, np_lp, p = tiny_model(seed)
  B, max_len = 5, 6
  init = h0(B, seed)
  out = greedy(p, init, max_len)
  for b in range(B):
    ref = np_greedy(np_lp, init[b].astype(np.float64), max_len)
    L = int(out.lengths[b])
    assert out.tokens[b, :L].tolist() == ref
    assert (np.asarray(out.tokens[b, L:]) == 0).all()
    np.testing.assert_allclose(out.logprob[b], np_logprob(np_lp, init[b].astype(np.float64), ref),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_beam_width_one_equals_greedy(seed):
  step_fn, _, p = tiny_model(seed, eos_bias=0.5)
  B, max_len = 6, 7
  init = h0(B, seed)
  g = greedy(p, init, max_len)
  out = beam(p, init, max_len, 1)
  np.testing.assert_array_equal(out.tokens[:, 0], g.tokens)
  np.testing.assert_array_equal(out.lengths[:, 0], g.lengths)
  np.testing.assert_allclose(out.logprob[:, 0], g.logprob, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind,alpha", [("none", 0.0), ("average", 0.0), ("wu", 0.6),
                                        ("wu", 1.5)])
@pytest.mark.parametrize("seed", [0, 5])
def test_wide_beam_finds_the_argmax_by_enumeration(kind, alpha, seed):
  step_fn, np_lp, p = tiny_model(seed, eos_bias=-0.5)
  B, max_len = 3, 4
  init = h0(B, seed)
  seqs = all_sequences(max_len)  # 31 sequences; a beam of 32 can hold them all
  out = beam(p, init, max_len, 32, kind, alpha)
  for b in range(B):
    h = init[b].astype(np.float64)
    scores = [np_logprob(np_lp, h, s) / np_penalty(len(s), kind, alpha) for s in seqs]
    best = seqs[int(np.argmax(scores))]
    L = int(out.lengths[b, 0])
    assert out.tokens[b, 0, :L].tolist() == best
    np.testing.assert_allclose(out.scores[b, 0], max(scores), rtol=1e-4, atol=1e-4)
    # The beam holds every sequence, so its sorted scores are the sorted enumeration.
    np.testing.assert_allclose(np.sort(np.asarray(out.scores[b, :31]))[::-1],
                               np.sort(scores)[::-1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 3])
def test_beam_scores_are_sums_of_step_logprobs(seed):
  step_fn, np_lp, p = tiny_model(seed, eos_bias=0.3)
  B, K, max_len, alpha = 4, 3, 6, 0.8
  init = h0(B, seed)
  out = beam(p, init, max_len, K, "wu", alpha)
  for b in range(B):
    for k in range(K):
      L = int(out.lengths[b, k])
      seq = out.tokens[b, k, :L].tolist()
      assert EOS not in seq[:-1] and (seq[-1] == EOS or L == max_len)
      lp = np_logprob(np_lp, init[b].astype(np.float64), seq)
      np.testing.assert_allclose(out.logprob[b, k], lp, rtol=1e-4, atol=1e-4)
      np.testing.assert_allclose(out.scores[b, k], lp / ((5 + L) / 6) ** alpha, rtol=1e-4,
                                 atol=1e-4)
    assert np.all(np.diff(np.asarray(out.scores[b])) <= 1e-6)  # best first


def test_score_is_the_sum_of_step_logprobs():
  step_fn, np_lp, p = tiny_model(7)
  B = 3
  init = h0(B, 7)
  tokens = np.array([[1, 0, 2, 0, 0], [0, 0, 1, 1, 2], [2, 0, 0, 0, 0]])
  lengths = np.array([3, 5, 1])
  got = decoding.score(step_fn, init, jnp.full((B,), BOS), tokens, lengths)
  for b in range(B):
    want = np_logprob(np_lp, init[b].astype(np.float64), tokens[b, :lengths[b]].tolist())
    np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-4)


def test_sample_top_one_is_greedy_and_frequencies_follow_the_tempered_softmax():
  step_fn, np_lp, p = tiny_model(2)
  B = 8
  init = h0(B, 2)
  bos = jnp.full((B,), BOS)
  g = greedy(p, init, 5)
  s = decoding.sample(step_fn, init, jax.random.key(3), bos, 5, EOS, temperature=0.7, top_k=1)
  np.testing.assert_array_equal(s.tokens, g.tokens)
  # One step from one state, many rows: frequencies match softmax(top_k(logits) / temperature).
  N, temp = 20000, 2.0
  one = np.repeat(init[:1], N, 0)
  s = decoding.sample(step_fn, one, jax.random.key(4), jnp.full((N,), BOS), 1, None, temp, 2)
  lp = np_lp(init[0].astype(np.float64), [])
  keep = lp >= np.sort(lp)[-2]
  p = np.where(keep, np.exp(lp / temp), 0.0)
  p /= p.sum()
  freq = np.bincount(np.asarray(s.tokens[:, 0]), minlength=V) / N
  np.testing.assert_allclose(freq, p, atol=0.015)
  assert freq[~keep].sum() == 0


def test_decoding_compiles_once_per_shape():
  step_fn, _, p = tiny_model(0)
  traces = []

  @jax.jit
  def run(init):
    traces.append(1)
    bos = jnp.full((init.shape[0],), BOS)
    return (decoding.greedy(step_fn, init, bos, 5, EOS),
            decoding.beam_search(step_fn, init, bos, 3, 5, EOS, "wu"))

  for seed in range(3):
    run(h0(4, seed))
  assert len(traces) == 1
  run(h0(6, 0))
  assert len(traces) == 2


def test_bad_arguments_fail_clearly():
  step_fn, _, p = tiny_model(0)
  init, bos = h0(2), jnp.zeros((2,), jnp.int32)
  with pytest.raises(ValueError, match="max_len"):
    decoding.greedy(step_fn, init, bos, 0, EOS)
  with pytest.raises(ValueError, match="max_len"):
    decoding.beam_search(step_fn, init, bos, 2, 0, EOS)
  with pytest.raises(ValueError, match="beam_size"):
    decoding.beam_search(step_fn, init, bos, 0, 4, EOS)
  with pytest.raises(ValueError, match="temperature"):
    decoding.sample(step_fn, init, jax.random.key(0), bos, 4, EOS, temperature=0.0)
  with pytest.raises(ValueError, match="top_k"):
    decoding.sample(step_fn, init, jax.random.key(0), bos, 4, EOS, top_k=-1)
  with pytest.raises(ValueError, match="length_penalty"):
    decoding.beam_search(step_fn, init, bos, 2, 4, EOS, "log")
  with pytest.raises(ValueError, match="bos"):
    decoding.greedy(step_fn, init, 0, 4, EOS)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_argmax_equals_jnp_argmax_with_ties_infinities_and_nans(axis):
  rng = np.random.default_rng(axis + 7)
  x = np.round(rng.standard_normal((6, 9, 11)) * 2) / 2          # many ties
  x[0] = -np.inf                                                  # rows of -inf only
  x[1, :, 3] = np.inf
  x[2, 4, 5] = np.nan                                             # a NaN wins, the first one
  x[2, 4, 8] = np.nan
  x[3, :, 0] = np.nan
  for dtype in (np.float32, np.float64, np.int32):
    xd = np.nan_to_num(x, nan=0, posinf=99, neginf=-99).astype(dtype) if dtype == np.int32 else x.astype(dtype)
    with jax.enable_x64(dtype == np.float64):
      got = decoding.argmax(jnp.asarray(xd), axis=axis)
      np.testing.assert_array_equal(np.asarray(got), np.asarray(jnp.argmax(jnp.asarray(xd), axis=axis)))
  np.testing.assert_array_equal(np.asarray(decoding.argmax(jnp.asarray(x, jnp.float32), axis)),
                                np.argmax(x.astype(np.float32), axis=axis))   # NumPy: first NaN too
  with pytest.raises(ValueError, match="axis"):
    decoding.argmax(jnp.asarray(x), axis=3)


def test_categorical_draws_what_jax_random_categorical_draws():
  logits = jnp.asarray(np.random.default_rng(3).standard_normal((5, 37)) * 3, jnp.float32)
  logits = logits.at[0, :30].set(-jnp.inf)                       # impossible tokens
  for seed in range(20):
    key = jax.random.key(seed)
    np.testing.assert_array_equal(np.asarray(decoding.categorical(key, logits)),
                                  np.asarray(jax.random.categorical(key, logits, axis=-1)))
    np.testing.assert_array_equal(np.asarray(decoding.categorical(key, logits.T, axis=0)),
                                  np.asarray(jax.random.categorical(key, logits.T, axis=0)))
  assert (np.asarray(decoding.categorical(jax.random.key(0), logits))[0] >= 30)
