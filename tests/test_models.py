"""Models: pooling against NumPy, bidirectional 'last' state, LM one-step decoding equals teacher forcing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrent.layers import make_stack
from recurrent.models import LanguageModel, SequenceClassifier, SequenceTagger, pool

LENGTHS = np.array([5, 2, 1])


def test_pool_against_numpy():
  ys = np.asarray(jax.random.normal(jax.random.key(0), (3, 5, 4)))
  last = np.zeros((3, 4), np.float32)
  mean = pool(jnp.asarray(ys), LENGTHS, last, "mean")
  mx = pool(jnp.asarray(ys), LENGTHS, last, "max")
  for b, L in enumerate(LENGTHS):
    np.testing.assert_allclose(mean[b], ys[b, :L].mean(0), rtol=1e-5)
    np.testing.assert_allclose(mx[b], ys[b, :L].max(0), rtol=1e-6)
  with pytest.raises(ValueError, match="pooling: must be one of"):
    pool(jnp.asarray(ys), LENGTHS, last, "median")


def test_classifier_last_pooling_bidirectional_reads_both_ends():
  x = jax.random.normal(jax.random.key(1), (3, 5, 2))
  m = SequenceClassifier(cell="lstm", hidden_sizes=(4,), bidirectional=True, num_outputs=3)
  v = m.init(jax.random.key(0), x, LENGTHS)
  logits = m.apply(v, x, LENGTHS)
  stack = make_stack("lstm", 2, (4,), bidirectional=True)
  _, ys = stack.apply(v["params"]["rnn"]["stack"], x, LENGTHS)
  head = v["params"]["head"]
  for b, L in enumerate(LENGTHS):
    z = np.concatenate([ys[b, L - 1, :4], ys[b, 0, 4:]])  # forward at its end, backward at 0
    np.testing.assert_allclose(logits[b], z @ head["kernel"] + head["bias"], atol=1e-5)


def test_tagger_ignores_padding_content():
  x = jax.random.randint(jax.random.key(1), (3, 5), 0, 10)
  m = SequenceTagger(cell="gru", hidden_sizes=(6,), bidirectional=True, vocab_size=10,
                     embed_size=3, num_outputs=4)
  v = m.init(jax.random.key(0), x, LENGTHS)
  y1 = m.apply(v, x, LENGTHS)
  x2 = jnp.where(jnp.arange(5)[None, :] < LENGTHS[:, None], x, 7)
  y2 = m.apply(v, x2, LENGTHS)
  for b, L in enumerate(LENGTHS):
    np.testing.assert_allclose(y1[b, :L], y2[b, :L], atol=1e-6)


def test_language_model_step_equals_teacher_forcing():
  tokens = jax.random.randint(jax.random.key(1), (2, 6), 0, 11)
  lm = LanguageModel(cell="lstm", hidden_sizes=(8, 8), vocab_size=11, embed_size=4)
  v = lm.init(jax.random.key(0), tokens)
  logits, _ = lm.apply(v, tokens)
  carries = lm.initial_carries(2)
  for t in range(6):
    step_logits, carries = lm.apply(v, tokens[:, t], carries, method=LanguageModel.step)
    np.testing.assert_allclose(step_logits, logits[:, t], atol=1e-5)
  with pytest.raises(ValueError, match="bidirectional: a language model must be unidirectional"):
    LanguageModel(bidirectional=True, vocab_size=11).init(jax.random.key(0), tokens)
