"""The audio front end: WAV files in, normalised log-mel frames out.

Shape legend: B batch, N samples, T frames, W window (samples), F FFT bins
(n_fft // 2 + 1), M mel bands.

Reading (host, NumPy): ``read_wav`` opens a RIFF/WAVE PCM file with the
standard ``wave`` module, converts 8/16/32-bit integer samples to float in
[-1, 1), mixes several channels down to mono and resamples to the rate asked
for (``scipy.signal.resample_poly``). A file that is empty, truncated, not a
WAV or of a width we cannot read fails with a ValueError naming it.

Features (``jnp``, batched, jittable): with a periodic Hann window w of W
samples, hop R and n_fft >= W,

    X[b, t, k] = sum_n w[n] x[b, t R + n] exp(-2 pi i k n / n_fft)   (``stft``)
    P = |X|^2,   S[b, t, m] = log(sum_k P[b, t, k] H[k, m] + eps)    (``log_mel``)

where H is the triangular mel filterbank (``mel_filterbank``) on the HTK mel
scale mel(f) = 2595 log10(1 + f / 700): M triangles whose corners are M + 2
points equally spaced in mel between f_min and f_max. ``log_mel`` pads W - R
zeros in front of the signal, so frame t covers the samples
[(t + 1) R - W, (t + 1) R): a signal of N samples gives N // R frames and
every frame depends only on the past (streaming computes the same frames).

``normalise`` subtracts each band's mean and divides by its standard
deviation over an utterance's valid frames (cepstral mean and variance
normalisation); ``spec_augment`` zeroes random time and frequency stripes
(Park et al. 2019, without time warping); ``stack_frames`` concatenates k
consecutive frames to shorten T by k.
"""

from __future__ import annotations

import math
import os
import wave
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

Array = jax.Array
LOG_EPS = 1e-6


# -- files -------------------------------------------------------------------------------------

def read_wav(path: str | os.PathLike, rate: int | None = None) -> tuple[np.ndarray, int]:
  """(float32 mono samples in [-1, 1), sample rate) of a PCM WAV file, resampled to ``rate`` if given."""
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such WAV file")
  try:
    with wave.open(str(path), "rb") as f:
      channels, width, file_rate, n = (f.getnchannels(), f.getsampwidth(), f.getframerate(),
                                       f.getnframes())
      raw = f.readframes(n)
  except (wave.Error, EOFError) as e:
    raise ValueError(f"{path}: not a readable PCM WAV file ({e})") from None
  if n == 0:
    raise ValueError(f"{path}: the WAV file is empty (0 samples)")
  if len(raw) != n * channels * width:
    raise ValueError(f"{path}: the WAV file is truncated: its header promises {n} frames of "
                     f"{channels} x {width} bytes, the data hold {len(raw)} bytes")
  if width == 1:    # unsigned 8-bit
    x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
  elif width == 2:
    x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
  elif width == 4:
    x = (np.frombuffer(raw, "<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
  else:
    raise ValueError(f"{path}: sample width of {8 * width} bits is not supported; expected "
                     "8, 16 or 32-bit integer PCM")
  x = x.reshape(n, channels).mean(axis=1)  # several channels: their mean
  if rate is not None and rate != file_rate:
    x = resample(x, file_rate, rate)
  return x.astype(np.float32), rate or file_rate


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
  """Polyphase resampling by the reduced ratio to_rate / from_rate (anti-alias filtered)."""
  g = math.gcd(int(from_rate), int(to_rate))
  return scipy.signal.resample_poly(x, int(to_rate) // g, int(from_rate) // g).astype(np.float32)


# -- features ----------------------------------------------------------------------------------

def hz_to_mel(f):
  return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
  return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(rate: int, n_fft: int, n_mels: int, f_min: float = 20.0,
                   f_max: float | None = None) -> np.ndarray:
  """[F, M] triangular filters: filter m rises from corner m to 1 at corner m+1 and falls to 0 at m+2."""
  f_max = rate / 2 if f_max is None else f_max
  if not 0 <= f_min < f_max <= rate / 2:
    raise ValueError(f"mel_filterbank: need 0 <= f_min < f_max <= rate/2, got {f_min}, {f_max}")
  corners = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
  bins = np.arange(n_fft // 2 + 1) * rate / n_fft  # [F]
  lo, mid, hi = corners[:-2], corners[1:-1], corners[2:]  # [M]
  up = (bins[:, None] - lo) / (mid - lo)
  down = (hi - bins[:, None]) / (hi - mid)
  return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def hann(W: int) -> np.ndarray:
  """The periodic Hann window w[n] = 0.5 - 0.5 cos(2 pi n / W) (scipy's 'hann', fftbins=True)."""
  return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(W) / W)).astype(np.float32)


def stft(x_BN: Array, win: int, hop: int, n_fft: int) -> Array:
  """[B, T, F] complex spectra of the frames x[t R : t R + W] (no padding; T = 1 + (N - W) // R)."""
  N = x_BN.shape[-1]
  if N < win:
    raise ValueError(f"stft: the signal has {N} samples, fewer than one window of {win}")
  T = 1 + (N - win) // hop
  idx_TW = hop * jnp.arange(T)[:, None] + jnp.arange(win)[None, :]
  frames_BTW = x_BN[..., idx_TW]
  frames_BTW = frames_BTW * hann(win).reshape((1,) * (frames_BTW.ndim - 1) + (win,))
  return jnp.fft.rfft(frames_BTW, n=n_fft, axis=-1)


def frame_params(rate: int, win_ms: float = 25.0, hop_ms: float = 10.0) -> tuple[int, int, int]:
  """(window W, hop R, n_fft) in samples: n_fft the next power of two >= W."""
  win, hop = int(round(rate * win_ms / 1000)), int(round(rate * hop_ms / 1000))
  return win, hop, 1 << (win - 1).bit_length()


def log_mel(x_BN: Array, rate: int, n_mels: int = 40, win_ms: float = 25.0,
            hop_ms: float = 10.0, pad: bool = True) -> Array:
  """[B, N // R, M] log mel energies; frame t covers samples [(t+1)R - W, (t+1)R) (zeros before 0).

  ``pad=False`` (streaming): the caller has put the W - R samples before the
  signal in front of it, and every full window of ``x`` is a frame.
  """
  win, hop, n_fft = frame_params(rate, win_ms, hop_ms)
  x_BN = jnp.asarray(x_BN, jnp.float32)
  if pad:
    N = x_BN.shape[-1] // hop * hop
    x_BN = jnp.pad(x_BN[..., :N], [(0, 0)] * (x_BN.ndim - 1) + [(win - hop, 0)])
  power_BTF = jnp.abs(stft(x_BN, win, hop, n_fft)) ** 2
  return jnp.log(power_BTF @ mel_filterbank(rate, n_fft, n_mels) + LOG_EPS)


def num_frames(num_samples, rate: int, hop_ms: float = 10.0):
  """Frames of ``log_mel`` for a signal of ``num_samples`` (array or int)."""
  return num_samples // int(round(rate * hop_ms / 1000))


def normalise(x_BTM: Array, lengths_B: Array) -> Array:
  """Per utterance and band: (x - mean) / std over the valid frames t < length; padding stays 0."""
  mask = (jnp.arange(x_BTM.shape[1])[None, :] < lengths_B[:, None])[..., None]
  n = jnp.maximum(lengths_B, 1)[:, None, None].astype(x_BTM.dtype)
  mean = jnp.where(mask, x_BTM, 0.0).sum(1, keepdims=True) / n
  var = jnp.where(mask, (x_BTM - mean) ** 2, 0.0).sum(1, keepdims=True) / n
  return jnp.where(mask, (x_BTM - mean) * jax.lax.rsqrt(var + 1e-5), 0.0)


def spec_augment(rng: Array, x_BTM: Array, num_time: int, max_time: int, num_freq: int,
                 max_freq: int) -> Array:
  """Zeroes ``num_time`` stripes of up to ``max_time`` frames and ``num_freq`` of up to ``max_freq`` bands."""
  B, T, M = x_BTM.shape
  keep = jnp.ones((B, T, M), bool)
  for i, (count, width, size, axis) in enumerate([(num_time, max_time, T, 1),
                                                  (num_freq, max_freq, M, 2)]):
    for j in range(count):
      k_w, k_s = jax.random.split(jax.random.fold_in(rng, 2 * j + i))
      w = jax.random.randint(k_w, (B,), 0, width + 1)
      s = jax.random.randint(k_s, (B,), 0, jnp.maximum(size - w, 0) + 1)
      pos = jnp.arange(size)[None, :]
      stripe = (pos >= s[:, None]) & (pos < (s + w)[:, None])  # [B, size]
      keep &= ~(stripe[:, :, None] if axis == 1 else stripe[:, None, :])
  return jnp.where(keep, x_BTM, 0.0)


def stack_frames(x_BTM: Array, lengths_B: Array, k: int) -> tuple[Array, Array]:
  """([B, ceil(T/k), k M], ceil(lengths / k)): frames k t .. k t + k - 1 side by side (zeros past T)."""
  if k == 1:
    return x_BTM, lengths_B
  B, T, M = x_BTM.shape
  Tk = -(-T // k)
  x = jnp.pad(x_BTM, ((0, 0), (0, Tk * k - T), (0, 0)))
  return x.reshape(B, Tk, k * M), -(-lengths_B // k)
