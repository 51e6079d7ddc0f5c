"""Speech models over log-mel frames: a CTC encoder and a streaming trigger-word detector.

Shape legend: B batch, N samples, T frames, M mel bands, D encoder input,
H hidden, V classes, C convolution channels, U output frames (T / stride).

``Frontend``: audio [B, N] -> normalised log-mel frames, stacked k at a time
(``recurrent.data.audio``), with SpecAugment in training.

``CTCModel`` (Graves et al. 2006): a (bidirectional, stacked) recurrent
encoder over the frames and a dense layer to V = 1 + labels logits per
frame; trained with ``recurrent.ctc.ctc_loss``.

``TriggerModel`` (the seed's trigger-word network): a causal 1-D
convolution over the log-mel frames (kernel K, stride S, left context K - S
so that output u sees frames up to (u + 1) S - 1 and nothing later),

    z_u = ReLU(sum_{i<K} x_{u S - K + S + i} W_i + b),   h_u = GRU(h_{u-1}, z_u),
    p(trigger ended recently | x_<=u) = sigmoid(w . h_u + c),

a unidirectional GRU and a per-frame probability. The log-mel frames are
scaled by fixed per-band statistics of the training data (``norm``), never
by the utterance's own, so that the model is causal. ``stream_step`` runs
the same computation on audio chunk by chunk, carrying the last W - R
samples, the last K - S frames and the GRU state (``layers.unroll`` with
``initial_carry``), and gives the offline outputs exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from recurrent import layers
from recurrent.cells import make_cell
from recurrent.cells.base import Array
from recurrent.data import audio


def _dense_init(key: Array, n_in: int, n_out: int) -> dict:
  return {"W": jax.nn.initializers.lecun_normal()(key, (n_in, n_out)), "b": jnp.zeros((n_out,))}


def _dense(p: dict, x: Array) -> Array:
  return x @ p["W"] + p["b"].reshape((1,) * (x.ndim - 1) + (-1,))


@dataclasses.dataclass(frozen=True)
class Frontend:
  """Audio -> features: log-mel, per-utterance normalisation, SpecAugment (training), frame stacking."""

  rate: int = 8000
  n_mels: int = 40
  stack: int = 3
  time_masks: int = 0     # SpecAugment stripes (training only)
  max_time: int = 20
  freq_masks: int = 0
  max_freq: int = 8

  @property
  def size(self) -> int:
    return self.n_mels * self.stack

  def __call__(self, audio_BN: Array, audio_len_B: Array, rng: Array | None = None):
    """([B, T / stack, n_mels * stack] features, [B] frame counts)."""
    x = audio.log_mel(audio_BN, self.rate, self.n_mels)
    n = audio.num_frames(audio_len_B, self.rate)
    x = audio.normalise(x, n)
    if rng is not None and (self.time_masks or self.freq_masks):
      x = audio.spec_augment(rng, x, self.time_masks, self.max_time, self.freq_masks,
                             self.max_freq)
    return audio.stack_frames(x, n, self.stack)


@dataclasses.dataclass(frozen=True)
class CTCModel:
  """Frames [B, T, D] -> logits [B, T, V] (class 0 the blank)."""

  input_size: int
  num_classes: int
  cell: str = "gru"
  hidden_sizes: tuple = (128,)
  bidirectional: bool = True
  dropout: float = 0.0
  # the rest as ``layers.make_stack`` (``models.stack_kwargs(config.model)`` fills them)
  merge: str = "concat"
  residual: bool = False
  highway: bool = False
  unroll: int = 1
  impl: str = "auto"
  remat: int = 0
  param_dtype: Any = None         # the cells' weight dtype (None: float32)

  @property
  def encoder(self) -> layers.Stack:
    cell_kwargs = {} if self.param_dtype is None else {"param_dtype": self.param_dtype}
    return layers.make_stack(self.cell, self.input_size, tuple(self.hidden_sizes),
                             self.bidirectional, self.merge, self.dropout, self.residual,
                             self.highway, unroll=self.unroll, impl=self.impl, remat=self.remat,
                             **cell_kwargs)

  def init(self, key: Array) -> dict:
    k_enc, k_out = jax.random.split(key)
    return {"encoder": self.encoder.init(k_enc),
            "out": _dense_init(k_out, self.encoder.output_size, self.num_classes)}

  def logits(self, params: dict, x_BTD: Array, lengths_B: Array, rng: Array | None = None) -> Array:
    _, h_BTH = self.encoder.apply(params["encoder"], x_BTD, lengths_B, rng=rng)
    if rng is not None and self.dropout > 0.0:
      keep = jax.random.bernoulli(jax.random.fold_in(rng, 999), 1.0 - self.dropout, h_BTH.shape)
      h_BTH = jnp.where(keep, h_BTH / (1.0 - self.dropout), 0.0)
    return _dense(params["out"], h_BTH)


class StreamState(NamedTuple):
  samples_BW: Array     # the last W - R samples read
  frames_BKM: Array     # the last K - S log-mel frames (scaled by ``norm``)
  carry: Any            # the GRU carry


@dataclasses.dataclass(frozen=True)
class TriggerModel:
  """Audio [B, N] -> per-output-frame trigger logits [B, N // (R S)]; causal, streamable."""

  rate: int = 8000
  n_mels: int = 40
  kernel: int = 15
  stride: int = 2
  channels: int = 64
  hidden: int = 128
  cell: str = "gru"
  dropout: float = 0.0
  norm: tuple = ()        # (means, stds) per band, from training data; () = none
  unroll: int = 1         # how the offline pass runs the recurrence (``layers.unroll``)
  impl: str = "auto"
  remat: int = 0
  param_dtype: Any = None # the cell's weight dtype (None: float32)

  def __post_init__(self):
    if self.kernel < self.stride:
      raise ValueError(f"kernel: must be >= stride {self.stride}, got {self.kernel}")
    layers.check_impl(self.impl)

  @property
  def rnn(self):
    cell_kwargs = {} if self.param_dtype is None else {"param_dtype": self.param_dtype}
    return make_cell(self.cell, self.channels, self.hidden, **cell_kwargs)

  @property
  def hop(self) -> int:
    return audio.frame_params(self.rate)[1]

  @property
  def samples_per_output(self) -> int:
    return self.hop * self.stride

  def init(self, key: Array) -> dict:
    k_conv, k_rnn, k_out = jax.random.split(key, 3)
    fan_in = self.kernel * self.n_mels
    return {"conv": {"W": jax.random.normal(k_conv, (self.kernel, self.n_mels, self.channels))
                     / jnp.sqrt(fan_in), "b": jnp.zeros((self.channels,))},
            "rnn": self.rnn.init(k_rnn), "out": _dense_init(k_out, self.hidden, 1)}

  def _scale(self, x_BTM: Array) -> Array:
    if not self.norm:
      return x_BTM
    mean, std = (jnp.asarray(v, jnp.float32)[None, None, :] for v in self.norm)
    return (x_BTM - mean) / std

  def _conv(self, params: dict, x_BTM: Array) -> Array:
    """Valid strided convolution: [B, T, M] -> [B, (T - K) // S + 1, C]."""
    y = jax.lax.conv_general_dilated(x_BTM, params["conv"]["W"], (self.stride,), "VALID",
                                     dimension_numbers=("NWC", "WIO", "NWC"))
    return jax.nn.relu(y + params["conv"]["b"][None, None, :])

  def _head(self, params, z_BUC, lengths_B, carry, rng):
    if rng is not None and self.dropout > 0.0:
      keep = jax.random.bernoulli(rng, 1.0 - self.dropout, z_BUC.shape)
      z_BUC = jnp.where(keep, z_BUC / (1.0 - self.dropout), 0.0)
    carry, h_BUH = layers.unroll(self.rnn, params["rnn"], z_BUC, lengths_B, initial_carry=carry,
                                 unroll=self.unroll, impl=self.impl, remat=self.remat)
    return carry, _dense(params["out"], h_BUH)[..., 0]

  def num_outputs(self, num_samples):
    return num_samples // self.samples_per_output

  def logits(self, params: dict, audio_BN: Array, audio_len_B: Array | None = None,
             rng: Array | None = None) -> Array:
    """Offline: [B, U] logits, U = N // (R S); output u has heard samples < (u + 1) R S."""
    B, N = audio_BN.shape
    U = self.num_outputs(N)
    x = audio.log_mel(audio_BN[:, :U * self.samples_per_output], self.rate, self.n_mels)
    x = jnp.pad(self._scale(x), ((0, 0), (self.kernel - self.stride, 0), (0, 0)))
    lengths = None if audio_len_B is None else self.num_outputs(audio_len_B)
    _, out = self._head(params, self._conv(params, x), lengths, None, rng)
    return out

  def stream_init(self, batch: int) -> StreamState:
    win, hop, _ = audio.frame_params(self.rate)
    return StreamState(jnp.zeros((batch, win - hop)),
                       jnp.zeros((batch, self.kernel - self.stride, self.n_mels)),
                       self.rnn.initial_carry((batch,)))

  def stream_step(self, params: dict, state: StreamState, chunk_BN: Array
                  ) -> tuple[StreamState, Array]:
    """Reads one chunk (a multiple of R S samples) -> (state, [B, chunk / (R S)] logits)."""
    n = chunk_BN.shape[1]
    if n % self.samples_per_output:
      raise ValueError(f"chunk: its length must be a multiple of {self.samples_per_output} "
                       f"samples (hop x stride), got {n}")
    win, hop, _ = audio.frame_params(self.rate)
    x = jnp.concatenate([state.samples_BW, chunk_BN], 1)
    mel = audio.log_mel(x, self.rate, self.n_mels, pad=False)
    frames = jnp.concatenate([state.frames_BKM, self._scale(mel)], 1)
    carry, out = self._head(params, self._conv(params, frames), None, state.carry, None)
    keep = self.kernel - self.stride
    new = StreamState(x[:, x.shape[1] - (win - hop):], frames[:, frames.shape[1] - keep:], carry)
    return new, out
