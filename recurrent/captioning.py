"""Image captioning: a small CNN over the image, and the seq2seq decoder over its regions or its global feature.

Shape legend: B batch, H x W image, h x w region grid, R = h w regions,
C conv channels, G global feature size, T caption time, V vocabulary.

Encoder (Flax ``ConvEncoder``): ``len(features)`` stages of a 3 x 3
convolution, ReLU and 2 x 2 max pooling, then one more 3 x 3 convolution and
ReLU at the grid's resolution (it widens each region's receptive field, to
38 px with three stages, beyond one digit), so an H x W image gives an
h x w = H / 2^L x W / 2^L grid of C = features[-1] channel region features
a_1..a_R (Xu et al. 2015 take a VGG conv layer's 14 x 14 grid; here the
digits are small and so is the net).

"Show, attend and tell" (Xu et al. 2015, soft attention), ``attention``
"bahdanau" (or a Luong kind): each region's features, with its normalised
grid coordinates (row, col) in [-1, 1] appended (so that the context vector
says *where* the decoder looked, which a place word needs), are the source
of ``recurrent.seq2seq.Seq2Seq`` with no recurrent encoder
(``encoder_sizes = ()``): keys k_r = W_e [a_r; pos_r] + b_e, the decoder's
initial state tanh(W_init mean_r k_r + b) (Xu et al.: f_init of the mean
annotation), and at every word the Bahdanau context
c_t = sum_r alpha_tr k_r with alpha_t = softmax_r(v^T tanh(W_q h_{t-1} + W_k k_r + b)).

"Show and tell" baseline (Vinyals et al. 2015; Mao et al. 2014),
``attention = "none"``: the grid is flattened into one global feature
f = ReLU(W_g vec(a) + b_g) [G], the seq2seq source is that single vector; the
decoder starts from tanh(W_init W_e f) and reads the same context W_e f at
every step (Mao et al.'s m-RNN feeds the image at each word; Vinyals et al.
only at the start). No attention, so no weights to show.

Doubly stochastic attention (Xu et al. 2015, eq. 14) is a loss term, in
``attention_penalty``: lambda sum_r (1 - sum_t alpha_tr)^2 over the caption's
real steps.

A "source" here is an image batch ``src`` uint8 or float [B, H, W] (0-255)
with ``src_len`` [B], the number of real regions (R for a whole canvas; a
smaller number masks the rest, which then get zero weight); the methods
mirror ``Seq2Seq``'s (``encode``, ``step_fn``, ``forward``) so that
``recurrent.tasks._seq2seq``'s jitted decoding and scoring run unchanged.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from recurrent.cells.base import Array, expand_like
from recurrent.checks import check_int
from recurrent.layers import time_mask
from recurrent.seq2seq import ATTENTIONS, DecoderCarry, Memory, Seq2Seq

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # train pixels in [0, 1] (shared/data/README.md)


class ConvEncoder(nn.Module):
  """[B, H, W, 1] -> [B, H / 2^L, W / 2^L, features[-1]]: L stages of conv 3x3, ReLU, max-pool 2x2; conv 3x3, ReLU."""

  features: tuple = (32, 64, 64)

  @nn.compact
  def __call__(self, x_BHW1: Array) -> Array:
    x = x_BHW1
    for f in self.features:
      x = nn.relu(nn.Conv(f, (3, 3), padding="SAME")(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return nn.relu(nn.Conv(self.features[-1], (3, 3), padding="SAME")(x))


def region_positions(h: int, w: int) -> Array:
  """[h w, 2]: each region's (row, col) grid coordinate scaled to [-1, 1], row-major."""
  r = jnp.linspace(-1.0, 1.0, h) if h > 1 else jnp.zeros((1,))
  c = jnp.linspace(-1.0, 1.0, w) if w > 1 else jnp.zeros((1,))
  return jnp.stack(jnp.meshgrid(r, c, indexing="ij"), -1).reshape(h * w, 2)


def attention_penalty(weights_BTR: Array, tgt_len_B: Array) -> Array:
  """[B]: sum_r (1 - sum_{t < len} alpha_tr)^2, Xu et al. (2015) eq. 14 without lambda."""
  mask_BT = time_mask(tgt_len_B, weights_BTR.shape[1])
  total_BR = jnp.where(mask_BT[..., None], weights_BTR, 0.0).sum(1)
  return ((1.0 - total_BR) ** 2).sum(-1)


@dataclasses.dataclass(frozen=True)
class Captioner:
  """A CNN encoder and a ``Seq2Seq`` decoder; methods are pure functions of a parameter pytree."""

  vocab: int
  image_shape: tuple                  # (H, W), each divisible by 2^len(conv_features)
  conv_features: tuple = (32, 64, 64)
  attention: str = "bahdanau"         # "none": the show-and-tell baseline
  global_size: int = 256              # G, the baseline's image feature
  cell: str = "lstm"
  embed_size: int = 64
  decoder_sizes: tuple = (128,)
  attn_size: int = 64
  output_size: int = 128
  input_feeding: bool = False
  dropout: float = 0.0                # on h~, in training

  def __post_init__(self):
    check_int("vocab", self.vocab)
    check_int("global_size", self.global_size)
    if not self.conv_features:
      raise ValueError("conv_features: need at least one conv stage, got ()")
    for i, f in enumerate(self.conv_features):
      check_int(f"conv_features[{i}]", f)
    if self.attention not in ATTENTIONS:
      raise ValueError(f"attention: unknown kind {self.attention!r}; valid kinds are "
                       f"{list(ATTENTIONS)}")
    if len(self.image_shape) != 2:
      raise ValueError(f"image_shape: expected (H, W), got {self.image_shape!r}")
    k = 2 ** len(self.conv_features)
    if any(s % k or s < k for s in self.image_shape):
      raise ValueError(f"image_shape: H and W must be positive multiples of 2^{len(self.conv_features)}"
                       f" = {k} (one 2 x 2 pooling per conv stage), got {tuple(self.image_shape)}")
    self.seq2seq  # noqa: B018 (validates the decoder's fields)

  @property
  def grid(self) -> tuple[int, int]:
    k = 2 ** len(self.conv_features)
    return self.image_shape[0] // k, self.image_shape[1] // k

  @property
  def num_regions(self) -> int:
    return self.grid[0] * self.grid[1]

  @property
  def cnn(self) -> ConvEncoder:
    return ConvEncoder(tuple(self.conv_features))

  @property
  def seq2seq(self) -> Seq2Seq:
    features = self.global_size if self.attention == "none" else self.conv_features[-1] + 2
    return Seq2Seq(src_vocab=1, tgt_vocab=self.vocab, embed_size=self.embed_size, cell=self.cell,
                   encoder_sizes=(), bidirectional=False, decoder_sizes=tuple(self.decoder_sizes),
                   attention=self.attention, attn_size=self.attn_size,
                   output_size=self.output_size, input_feeding=self.input_feeding,
                   bridge="learned", dropout=self.dropout, src_features=features)

  def init(self, key: Array) -> dict:
    k_cnn, k_global, k_dec = jax.random.split(key, 3)
    H, W = self.image_shape
    params = {"cnn": self.cnn.init(k_cnn, jnp.zeros((1, H, W, 1)))["params"],
              "decoder": self.seq2seq.init(k_dec)}
    if self.attention == "none":
      n_in = self.num_regions * self.conv_features[-1]
      params["global"] = {"W": jax.nn.initializers.lecun_normal()(k_global, (n_in, self.global_size)),
                          "b": jnp.zeros((self.global_size,))}
    return params

  def regions(self, params: dict, images_BHW: Array) -> Array:
    """The decoder's source: [B, R, C + 2] regions with positions, or [B, 1, G] (baseline)."""
    images_BHW = jnp.asarray(images_BHW)
    if images_BHW.ndim != 3 or tuple(images_BHW.shape[1:]) != tuple(self.image_shape):
      raise ValueError(f"src: expected images [B, {self.image_shape[0]}, {self.image_shape[1]}], "
                       f"got shape {tuple(images_BHW.shape)}")
    x = (images_BHW.astype(jnp.float32) / 255.0 - MNIST_MEAN) / MNIST_STD
    grid_BhwC = self.cnn.apply({"params": params["cnn"]}, x[..., None])
    B, h, w, C = grid_BhwC.shape
    if self.attention == "none":
      g = params["global"]
      z_BG = grid_BhwC.reshape(B, h * w * C) @ g["W"]
      f_BG = jax.nn.relu(z_BG + expand_like(g["b"], z_BG))
      return f_BG[:, None, :]
    pos_BR2 = jnp.broadcast_to(region_positions(h, w), (B, h * w, 2))
    return jnp.concatenate([grid_BhwC.reshape(B, h * w, C), pos_BR2], -1)

  def _source_len(self, src_len_B: Array, B: int) -> Array:
    if self.attention == "none":
      return jnp.ones((B,), jnp.int32)  # one global feature
    return jnp.asarray(src_len_B)

  def encode(self, params: dict, src_BHW: Array, src_len_B: Array, rng: Array | None = None
             ) -> tuple[Memory, DecoderCarry]:
    """The decoder's memory (regions) and initial carry; ``src_len_B`` real regions per image."""
    src = self.regions(params, src_BHW)
    return self.seq2seq.encode(params["decoder"], src, self._source_len(src_len_B, src.shape[0]),
                               rng)

  def step_fn(self, params: dict, memory: Memory):
    """The callback of ``recurrent.decoding``: (tokens_B, carry) -> (logits_BV, carry)."""
    return self.seq2seq.step_fn(params["decoder"], memory)

  def forward(self, params: dict, src_BHW: Array, src_len_B: Array, tgt_in_BT: Array,
              rng: Array | None = None, teacher_forcing: Array | float = 1.0
              ) -> tuple[Array, Array]:
    """Logits [B, T, V] and attention weights [B, T, R] ([B, T, 1] zeros: baseline) for ``tgt_in``."""
    src = self.regions(params, src_BHW)
    return self.seq2seq.forward(params["decoder"], src, self._source_len(src_len_B, src.shape[0]),
                                tgt_in_BT, rng, teacher_forcing)


__all__ = ["Captioner", "ConvEncoder", "attention_penalty", "region_positions"]
