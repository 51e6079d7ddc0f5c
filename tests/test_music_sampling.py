"""Sampling piano rolls: note frequencies follow the model's Bernoulli probabilities; feedback; the MIDI bytes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrent.data.music import NUM_NOTES, shift_right
from recurrent.layers import make_stack
from recurrent.models import SequenceTagger
from recurrent import music_sampling as ms


def tagger_and_stack(cell="gru", hidden=(16,)):
  tagger = SequenceTagger(cell=cell, hidden_sizes=hidden, num_outputs=NUM_NOTES)
  params = tagger.init(jax.random.key(0), jnp.zeros((1, 4, NUM_NOTES)))["params"]
  params = jax.tree.map(lambda p: 3.0 * p, params)   # spread the probabilities over (0, 1)
  return tagger, params, make_stack(cell, NUM_NOTES, hidden)


def tagger_probs(tagger, params, x_TN):
  return np.asarray(jax.nn.sigmoid(tagger.apply({"params": params}, jnp.asarray(x_TN[None]))))[0]


def test_note_frequencies_follow_the_models_probabilities():
  tagger, params, stack = tagger_and_stack()
  N = 6000
  rolls, probs = ms.sample_rolls(stack, params, jax.random.key(1), 2, batch_size=N)
  p = tagger_probs(tagger, params, np.zeros((1, NUM_NOTES), np.float32))[0]  # after the silent frame
  np.testing.assert_allclose(probs[:, 0], np.broadcast_to(p, (N, NUM_NOTES)), rtol=1e-5, atol=1e-6)
  freq = np.asarray(rolls[:, 0]).mean(0)
  tol = 4.5 * np.sqrt(p * (1 - p) / N) + 1e-3         # 4.5 binomial standard deviations per note
  assert np.all(np.abs(freq - p) <= tol), np.max(np.abs(freq - p) / tol)
  assert 0.2 < p.max() and p.min() < 0.8                # not vacuous: probabilities far from 0 and 1
  # independent notes: the pairwise covariance of two likely notes is ~0
  a, b = np.argsort(np.abs(p - 0.5))[:2]
  x = np.asarray(rolls[:, 0])
  assert abs(np.mean(x[:, a] * x[:, b]) - freq[a] * freq[b]) < 4.5 * 0.5 / np.sqrt(N)


@pytest.mark.parametrize("primed", [False, True])
def test_samples_are_fed_back_and_primes_read(primed):
  """The probabilities the sampler used equal the tagger's on the sampled roll (teacher forcing)."""
  tagger, params, stack = tagger_and_stack("lstm", (12, 12))
  prime = (np.random.default_rng(0).random((5, NUM_NOTES)) < 0.1).astype(np.float32) if primed else None
  rolls, probs = ms.sample_rolls(stack, params, jax.random.key(2), 7, batch_size=2, prime_TN=prime)
  for b in range(2):
    full = np.asarray(rolls[b]) if prime is None else np.concatenate([prime, np.asarray(rolls[b])])
    want = tagger_probs(tagger, params, shift_right(full).astype(np.float32))
    np.testing.assert_allclose(probs[b], want[-7:], atol=2e-5)
  assert set(np.unique(np.asarray(rolls))) <= {0.0, 1.0}


def test_midi_bytes_follow_the_standard_midi_file_format():
  roll = np.zeros((3, NUM_NOTES), np.uint8)
  roll[0:2, 39] = 1                                   # C4 (MIDI 60) for two steps
  roll[1, 43] = 1                                     # E4 (MIDI 64) at step 1
  want = (b"MThd" + bytes([0, 0, 0, 6, 0, 0, 0, 1, 0x01, 0xE0])    # format 0, 1 track, 480 ticks
          + b"MTrk" + bytes([0, 0, 0, 23])                # 4 + 5 + 5 + 4 + 5 event bytes
          + bytes([0x00, 0x90, 60, 80])               # t = 0: C4 on
          + bytes([0x83, 0x60, 0x90, 64, 80])         # +480 (VLQ 83 60): E4 on
          + bytes([0x83, 0x60, 0x80, 60, 0])          # +480: C4 off
          + bytes([0x00, 0x80, 64, 0])                # E4 off
          + bytes([0x83, 0x60, 0xFF, 0x2F, 0x00]))    # +480 (the silent step 2): end of track
  assert ms.midi_bytes(roll) == want
  assert ms._varlen(0) == b"\x00" and ms._varlen(127) == b"\x7f" and ms._varlen(0x4000) == b"\x81\x80\x00"
  with pytest.raises(ValueError, match="roll: expected a"):
    ms.midi_bytes(np.zeros(5))
