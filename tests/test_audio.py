"""The audio front end against scipy and NumPy references; WAV files are synthesised here."""

import wave

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from recurrent.data import audio


def _write_pcm(path, data: bytes, rate=8000, channels=1, width=2):
  with wave.open(str(path), "wb") as f:
    f.setnchannels(channels)
    f.setsampwidth(width)
    f.setframerate(rate)
    f.writeframes(data)


def test_stft_matches_scipy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 1000)).astype(np.float32)
  win, hop, n_fft = 200, 80, 256
  got = np.asarray(audio.stft(jnp.asarray(x), win, hop, n_fft))  # [B, T, F]
  _, _, Z = scipy.signal.stft(x, window="hann", nperseg=win, noverlap=win - hop, nfft=n_fft,
                              boundary=None, padded=False)       # [B, F, T], scaled by 1/sum(w)
  want = np.swapaxes(Z, 1, 2) * scipy.signal.get_window("hann", win).sum()
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=2e-3, rtol=1e-4)


def test_mel_filterbank_matches_the_formula():
  rate, n_fft, M, f_min = 8000, 256, 10, 20.0
  got = audio.mel_filterbank(rate, n_fft, M, f_min)
  # Reference, one filter and one bin at a time from the HTK formula.
  mel = lambda f: 2595.0 * np.log10(1 + f / 700.0)
  inv = lambda m: 700.0 * (10 ** (m / 2595.0) - 1)
  step = (mel(rate / 2) - mel(f_min)) / (M + 1)
  pts = [inv(mel(f_min) + i * step) for i in range(M + 2)]
  want = np.zeros((n_fft // 2 + 1, M))
  for m in range(M):
    for k in range(n_fft // 2 + 1):
      f = k * rate / n_fft
      if pts[m] <= f <= pts[m + 1]:
        want[k, m] = (f - pts[m]) / (pts[m + 1] - pts[m])
      elif pts[m + 1] < f <= pts[m + 2]:
        want[k, m] = (pts[m + 2] - f) / (pts[m + 2] - pts[m + 1])
  np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_pure_tone_lands_in_its_mel_band(freq):
  rate, M = 8000, 40
  t = np.arange(rate) / rate
  x = (0.5 * np.sin(2 * np.pi * freq * t))[None].astype(np.float32)
  S = np.asarray(audio.log_mel(x, rate, M))  # [1, 100, 40]
  assert S.shape == (1, 100, M)
  loudest = np.bincount(S[0, 5:].argmax(-1)).argmax()
  _, _, n_fft = audio.frame_params(rate)
  fb = audio.mel_filterbank(rate, n_fft, M)
  centre = np.argmax(fb, axis=0) * rate / n_fft  # the bin where each filter peaks
  assert abs(centre[loudest] - freq) <= 1.5 * np.diff(centre)[max(loudest - 1, 0)] + rate / n_fft


def test_log_mel_is_causal_and_jittable_in_batches():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(3, 1600)).astype(np.float32)
  full = jax.jit(lambda x: audio.log_mel(x, 8000))(x)
  assert full.shape == (3, 20, 40)
  # The first 8 frames depend only on the first 8 hops of samples.
  part = audio.log_mel(x[:, :640], 8000)
  np.testing.assert_allclose(part, full[:, :8], atol=1e-4)
  assert audio.num_frames(1600, 8000) == 20


def test_normalise_uses_only_valid_frames():
  rng = np.random.default_rng(2)
  x = rng.normal(3.0, 2.0, size=(2, 10, 4)).astype(np.float32)
  lengths = np.array([10, 6])
  y = np.asarray(audio.normalise(jnp.asarray(x), jnp.asarray(lengths)))
  v = x[1, :6]
  np.testing.assert_allclose(y[1, :6], (v - v.mean(0)) / np.sqrt(v.var(0) + 1e-5), atol=1e-5)
  assert (y[1, 6:] == 0).all()
  np.testing.assert_allclose(y[0].mean(0), 0.0, atol=1e-5)


def test_spec_augment_masks_stripes():
  x = jnp.ones((4, 50, 20))
  y = np.asarray(audio.spec_augment(jax.random.key(0), x, 2, 10, 2, 5))
  assert 0 < (y == 0).mean() < 0.6
  zero_rows = (y == 0).all(-1)  # whole frames masked: time stripes
  zero_cols = (y == 0).all(1)   # whole bands masked: frequency stripes
  assert zero_rows.any() or zero_cols.any()
  assert ((y == 0) == (zero_rows[:, :, None] | zero_cols[:, None, :])).all()


def test_stack_frames():
  x = jnp.arange(2 * 7 * 2, dtype=jnp.float32).reshape(2, 7, 2)
  y, L = audio.stack_frames(x, jnp.array([7, 4]), 3)
  assert y.shape == (2, 3, 6) and L.tolist() == [3, 2]
  np.testing.assert_array_equal(y[0, 1], np.concatenate([x[0, 3], x[0, 4], x[0, 5]]))
  np.testing.assert_array_equal(y[0, 2, 2:], 0.0)


def test_read_wav_converts_rate_channels_and_width(tmp_path):
  t = np.arange(16000) / 16000
  tone = 0.5 * np.sin(2 * np.pi * 440 * t)
  stereo = np.stack([tone, tone], 1)
  p = tmp_path / "stereo16k.wav"
  _write_pcm(p, (stereo * 32767).astype("<i2").tobytes(), rate=16000, channels=2)
  x, rate = audio.read_wav(p, 8000)
  assert rate == 8000 and x.shape == (8000,)
  np.testing.assert_allclose(x[100:-100], tone[::2][100:-100], atol=2e-3)
  p8 = tmp_path / "u8.wav"
  _write_pcm(p8, np.array([128, 255, 0], np.uint8).tobytes(), width=1)
  np.testing.assert_allclose(audio.read_wav(p8)[0], [0.0, 127 / 128, -1.0])


def test_read_wav_rejects_bad_files_naming_them(tmp_path):
  empty = tmp_path / "empty.wav"
  _write_pcm(empty, b"")
  with pytest.raises(ValueError, match="empty.wav.*empty"):
    audio.read_wav(empty)
  good = tmp_path / "cut.wav"
  _write_pcm(good, np.zeros(1000, "<i2").tobytes())
  (tmp_path / "cut.wav").write_bytes(good.read_bytes()[:1000])
  with pytest.raises(ValueError, match="cut.wav.*truncated"):
    audio.read_wav(tmp_path / "cut.wav")
  text = tmp_path / "notes.wav"
  text.write_text("not audio at all")
  with pytest.raises(ValueError, match="notes.wav.*not a readable"):
    audio.read_wav(text)
  w24 = tmp_path / "w24.wav"
  _write_pcm(w24, bytes(30), width=3)
  with pytest.raises(ValueError, match="w24.wav.*24 bits"):
    audio.read_wav(w24)
  with pytest.raises(FileNotFoundError, match="missing.wav"):
    audio.read_wav(tmp_path / "missing.wav")
