"""Encoder-decoder RNN with optional attention (Sutskever 2014, Cho 2014, Bahdanau 2015, Luong 2015).

Shape legend: B batch, S source time, T target time, V vocabulary, E encoder
output size (2H for a bidirectional encoder), H decoder hidden size, A size of
the attentional vector h~.

Token conventions: id 0 is PAD, 1 is BOS, 2 is EOS (``PAD, BOS, EOS``); a
source is [B, S] ids with ``src_len`` [B] (>= 1) real tokens; the decoder
reads ``tgt_in`` = BOS y_1 .. y_n and predicts ``tgt_out`` = y_1 .. y_n EOS.

Continuous sources (speech frames): with ``src_features`` = D > 0 the source
is [B, S, D] float frames, projected to ``embed_size`` by a dense layer (the
parameters ``src_embed`` = {W, b}) instead of looked up; ``src_vocab`` is
then unused.

Regions without an encoder (image captioning, Xu et al. 2015): with
``encoder_sizes = ()`` there is no recurrent encoder; the keys are the
projected source vectors themselves (zero at padding) and the summary is
their masked mean, s = (1/S) sum_s k_s (Xu et al.'s initial state reads the
mean annotation); ``bidirectional`` is then unused.

Encoder: a (bidirectional, stacked) ``recurrent.layers.Stack`` over source
embeddings, masked by ``src_len``. Its outputs k_1..k_S are the attention
keys/values; its summary s = [h_fw(last); h_bw(first)] of the last layer is
what the bridge and the no-attention baseline read.

Bridge (decoder initial state): "copy" passes encoder layer i's final carry to
decoder layer i (needs equal sizes, one direction); "learned" sets every part
of decoder layer i's carry to tanh(s W + b); "zeros"; "auto" copies when it
can and learns otherwise.

Decoder, one token per step, with e_t the target embedding of y_{t-1}:

    "none" (Cho et al. 2014): c = s for every t (a fixed context)
    "bahdanau": c_t = attend(h_{t-1}) (the previous top state is the query)
    x_t = [e_t; c_t (none, bahdanau); h~_{t-1} (input feeding, Luong sec. 3.3)]
    h_t = decoder stack step (``cell.project_inputs`` + ``cell.step`` per layer)
    "luong_dot" / "luong_general": c_t = attend(h_t) (the current top state)
    h~_t = tanh([c_t; h_t] W_c + b_c)          (Luong et al. 2015, eq. 5)
    p(y_t | y_<t, x) = softmax(h~_t W_o + b_o)

Teacher forcing with ratio r (scheduled sampling, Bengio et al. 2015): in
training each decoder input y_{t-1} is the reference token with probability
r and otherwise a token sampled from the model's own previous prediction.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from recurrent import decoding
from recurrent.attention import KINDS, Attention
from recurrent.cells.base import Array, expand_like
from recurrent.checks import check_int
from recurrent.layers import Stack, check_impl, make_stack, time_mask

PAD, BOS, EOS = 0, 1, 2
ATTENTIONS = ("none",) + KINDS
BRIDGES = ("auto", "copy", "learned", "zeros")


class Memory(NamedTuple):
  """What the decoder reads from the source at every step."""

  keys_BSE: Array         # encoder outputs (zero at padding)
  projected_BSX: Array    # Attention.precompute(keys), or keys without attention
  mask_BS: Array          # True at real source tokens
  summary_BE: Array       # s, the fixed context of the no-attention baseline


class DecoderCarry(NamedTuple):
  layers: tuple           # one cell carry per decoder layer
  feed_BA: Array          # h~_{t-1} (zeros before the first step)


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def check_tokens(name: str, ids: Array, vocab_size: int) -> None:
  """Fails, naming the argument, on an id outside [0, vocab_size) (when the values are known)."""
  ids = jnp.asarray(ids)
  if not jnp.issubdtype(ids.dtype, jnp.integer):
    raise ValueError(f"{name}: expected integer token ids, got dtype {ids.dtype}")
  if _is_concrete(ids) and ids.size:
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab_size:
      bad = lo if lo < 0 else hi
      raise ValueError(f"{name}: token ids must be in [0, {vocab_size}) (map unknown words to "
                       f"the UNK id in the data layer), got id {bad}")


def _dense_init(key: Array, n_in: int, n_out: int) -> dict:
  return {"W": jax.nn.initializers.lecun_normal()(key, (n_in, n_out)), "b": jnp.zeros((n_out,))}


def _dense(p: dict, x: Array) -> Array:
  y = x @ p["W"]
  return y + expand_like(p["b"], y)


@dataclasses.dataclass(frozen=True)
class Seq2Seq:
  """An encoder-decoder; its methods are pure functions of an explicit parameter pytree."""

  src_vocab: int
  tgt_vocab: int
  embed_size: int = 64
  cell: str = "lstm"
  encoder_sizes: tuple = (64,)
  bidirectional: bool = True
  decoder_sizes: tuple = (64,)
  attention: str = "bahdanau"
  attn_size: int = 64             # A of the additive score (bahdanau)
  output_size: int = 64           # size of h~
  input_feeding: bool = False
  bridge: str = "auto"
  dropout: float = 0.0            # between encoder layers and on h~, in training
  src_features: int = 0           # > 0: the source is [B, S, src_features] frames, not ids
  unroll: int = 1                 # steps per scan iteration (encoder and teacher-forced decoder)
  impl: str = "auto"              # the encoder's recurrence (``recurrent.layers.unroll``)
  remat: int = 0                  # > 0: the encoder recomputes chunks of this many steps and the
                                  # teacher-forced decoder each step in the backward pass
  param_dtype: Any = None         # the cells' weight dtype (None: float32); carries stay float32

  def __post_init__(self):
    for name in ("src_vocab", "tgt_vocab", "embed_size", "output_size", "unroll"):
      check_int(name, getattr(self, name))
    for name in ("encoder_sizes", "decoder_sizes"):
      sizes = getattr(self, name)
      if isinstance(sizes, int) or (name == "decoder_sizes" and not len(sizes)):
        what = "a non-empty tuple" if name == "decoder_sizes" else "a tuple (() for no recurrent encoder)"
        raise ValueError(f"{name}: must be {what} of sizes, one per layer, got {sizes!r}")
      for i, h in enumerate(sizes):
        check_int(f"{name}[{i}]", h)
    check_int("src_features", self.src_features, 0, note="0: token ids")
    check_impl(self.impl)
    check_int("remat", self.remat, 0, note="0: off")
    if self.attention not in ATTENTIONS:
      raise ValueError(f"attention: unknown kind {self.attention!r}; valid kinds are "
                       f"{list(ATTENTIONS)}")
    if self.bridge not in BRIDGES:
      raise ValueError(f"bridge: must be one of {BRIDGES}, got {self.bridge!r}")
    if self.bridge == "copy" and not self.can_copy:
      raise ValueError("bridge: 'copy' needs a one-direction encoder with the decoder's sizes "
                       f"{tuple(self.decoder_sizes)}, got encoder_sizes "
                       f"{tuple(self.encoder_sizes)}, bidirectional={self.bidirectional}")
    self.attention_module  # noqa: B018 (validates luong_dot sizes)

  # -- structure ---------------------------------------------------------------------------

  @property
  def encoder(self) -> Stack:
    if not self.encoder_sizes:
      raise ValueError("encoder: encoder_sizes is () (no recurrent encoder)")
    return make_stack(self.cell, self.embed_size, tuple(self.encoder_sizes), self.bidirectional,
                      dropout=self.dropout, **self._cell_kwargs)

  @property
  def _cell_kwargs(self) -> dict:
    return {} if self.param_dtype is None else {"param_dtype": self.param_dtype}

  @property
  def enc_size(self) -> int:
    return self.encoder.output_size if self.encoder_sizes else self.embed_size

  @property
  def can_copy(self) -> bool:
    return (bool(self.encoder_sizes) and not self.bidirectional
            and tuple(self.encoder_sizes) == tuple(self.decoder_sizes))

  @property
  def bridge_kind(self) -> str:
    if self.bridge == "auto":
      return "copy" if self.can_copy else "learned"
    return self.bridge

  @property
  def decoder(self) -> Stack:
    """The decoder's layers, stepped one token at a time (``Stack.step``)."""
    d = self.embed_size
    if self.attention in ("none", "bahdanau"):
      d += self.enc_size
    if self.input_feeding:
      d += self.output_size
    return make_stack(self.cell, d, tuple(self.decoder_sizes), **self._cell_kwargs)

  @property
  def decoder_cells(self) -> tuple:
    return tuple(layer.cell for layer in self.decoder.layers)

  @property
  def attention_module(self) -> Attention | None:
    if self.attention == "none":
      return None
    return Attention(self.attention, self.decoder_sizes[-1], self.enc_size, self.attn_size)

  def init(self, key: Array) -> dict:
    ks = jax.random.split(key, 8)
    lecun = jax.nn.initializers.lecun_normal()
    cells = self.decoder_cells
    src_embed = (_dense_init(ks[0], self.src_features, self.embed_size) if self.src_features
                 else jax.random.normal(ks[0], (self.src_vocab, self.embed_size)) * 0.1)
    params = {
        "src_embed": src_embed,
        "tgt_embed": jax.random.normal(ks[1], (self.tgt_vocab, self.embed_size)) * 0.1,
        "decoder": self.decoder.init(ks[3]),
        "combine": _dense_init(ks[4], self.enc_size + self.decoder_sizes[-1], self.output_size),
        "out": {"W": lecun(ks[5], (self.output_size, self.tgt_vocab)),
                "b": jnp.zeros((self.tgt_vocab,))},
    }
    if self.encoder_sizes:
      params["encoder"] = self.encoder.init(ks[2])
    if self.attention_module is not None:
      params["attention"] = self.attention_module.init(ks[6])
    if self.bridge_kind == "learned":
      bridge = []
      for i, (c, k) in enumerate(zip(cells, jax.random.split(ks[7], len(cells)))):
        n_leaves = len(jax.tree.leaves(c.initial_carry(())))
        bridge.append([_dense_init(kk, self.enc_size, c.hidden_size)
                       for kk in jax.random.split(k, n_leaves)])
      params["bridge"] = bridge
    return params

  # -- encoder -----------------------------------------------------------------------------

  def encode(self, params: dict, src_BS: Array, src_len_B: Array,
             rng: Array | None = None) -> tuple[Memory, DecoderCarry]:
    """Runs the encoder; returns the decoder's memory and initial carry."""
    src_BS = jnp.asarray(src_BS)
    if self.src_features:
      if src_BS.ndim != 3 or src_BS.shape[2] != self.src_features:
        raise ValueError(f"src: expected [B, S, {self.src_features}] frames, got shape "
                         f"{tuple(src_BS.shape)}")
    elif src_BS.ndim != 2:
      raise ValueError(f"src: expected [B, S] token ids, got shape {tuple(src_BS.shape)}")
    if src_BS.shape[1] == 0:
      raise ValueError("src: the source is empty (S = 0); every sentence needs a token")
    if not self.src_features:
      check_tokens("src", src_BS, self.src_vocab)
    src_len_B = jnp.asarray(src_len_B)
    if _is_concrete(src_len_B) and src_len_B.size and int(src_len_B.min()) < 1:
      raise ValueError(f"src_len: every source needs at least one token, got a length of "
                       f"{int(src_len_B.min())}")
    x_BSD = (_dense(params["src_embed"], src_BS) if self.src_features
             else params["src_embed"][src_BS])
    mask_BS = time_mask(src_len_B, src_BS.shape[1])
    if not self.encoder_sizes:  # regions: the projected vectors are the keys
      carries = None
      keys_BSE = jnp.where(mask_BS[..., None], x_BSD, 0.0)
      summary = keys_BSE.sum(1) / jnp.maximum(src_len_B, 1)[:, None].astype(keys_BSE.dtype)
    else:
      carries, keys_BSE = self.encoder.apply(params["encoder"], x_BSD, src_len_B, rng=rng,
                                             unroll=self.unroll, impl=self.impl, remat=self.remat)
      last = carries[-1]
      cell = self.encoder.layers[-1].cell
      if self.bidirectional:
        summary = jnp.concatenate([cell.hidden(last[0]), cell.hidden(last[1])], -1)
      else:
        summary = cell.hidden(last)
    att = self.attention_module
    projected = keys_BSE if att is None else att.precompute(params["attention"], keys_BSE)
    memory = Memory(keys_BSE, projected, mask_BS, summary)
    return memory, self.initial_carry(params, carries, summary)

  def initial_carry(self, params: dict, enc_carries: list, summary_BE: Array) -> DecoderCarry:
    """The bridge: the decoder's first carry from the encoder's final state."""
    B = summary_BE.shape[0]
    cells = self.decoder_cells
    kind = self.bridge_kind
    if kind == "copy":
      layers = tuple(enc_carries)
    elif kind == "zeros":
      layers = tuple(c.initial_carry((B,)) for c in cells)
    else:
      layers = []
      for c, ps in zip(cells, params["bridge"]):
        treedef = jax.tree.structure(c.initial_carry(()))
        leaves = [jnp.tanh(_dense(p, summary_BE)) for p in ps]
        layers.append(jax.tree.unflatten(treedef, leaves))
      layers = tuple(layers)
    return DecoderCarry(layers, jnp.zeros((B, self.output_size), summary_BE.dtype))

  # -- decoder -----------------------------------------------------------------------------

  def decoder_step(self, params: dict, memory: Memory, carry: DecoderCarry, tokens_B: Array,
                   rng: Array | None = None) -> tuple[Array, DecoderCarry, Array]:
    """One decoder step: (logits [B, V], carry, attention weights [B, S]) from y_{t-1}."""
    att = self.attention_module
    top = self.decoder_cells[-1]
    S = memory.mask_BS.shape[1]
    parts = [params["tgt_embed"][tokens_B]]
    if self.attention == "none":
      context, weights = memory.summary_BE, jnp.zeros((tokens_B.shape[0], S))
      parts.append(context)
    elif self.attention == "bahdanau":
      query = top.hidden(carry.layers[-1])
      context, weights = att(params["attention"], query, memory.keys_BSE, memory.projected_BSX,
                             memory.mask_BS)
      parts.append(context)
    if self.input_feeding:
      parts.append(carry.feed_BA)
    x = jnp.concatenate(parts, -1)
    layers, x = self.decoder.step(params["decoder"], carry.layers, x)
    if self.attention in ("luong_dot", "luong_general"):
      context, weights = att(params["attention"], x, memory.keys_BSE, memory.projected_BSX,
                             memory.mask_BS)
    h_tilde = jnp.tanh(_dense(params["combine"], jnp.concatenate([context, x], -1)))
    out = h_tilde
    if rng is not None and self.dropout > 0.0:
      keep = jax.random.bernoulli(rng, 1.0 - self.dropout, out.shape)
      out = jnp.where(keep, out / (1.0 - self.dropout), 0.0)
    logits = _dense(params["out"], out)
    return logits, DecoderCarry(tuple(layers), h_tilde), weights

  def step_fn(self, params: dict, memory: Memory):
    """The callback of ``recurrent.decoding``: (tokens_B, carry) -> (logits_BV, carry)."""

    def step(tokens_B, carry):
      logits, carry, _ = self.decoder_step(params, memory, carry, tokens_B)
      return logits, carry

    return step

  def forward(self, params: dict, src_BS: Array, src_len_B: Array, tgt_in_BT: Array,
              rng: Array | None = None, teacher_forcing: Array | float = 1.0
              ) -> tuple[Array, Array]:
    """Logits [B, T, V] and attention weights [B, T, S] for the decoder inputs ``tgt_in``.

    With ``rng`` (training) dropout is on and each input after the first is
    the reference with probability ``teacher_forcing``, else a sample from
    the model's previous prediction; without it every input is the reference.
    """
    check_tokens("tgt_in", tgt_in_BT, self.tgt_vocab)
    if jnp.ndim(tgt_in_BT) != 2 or jnp.shape(tgt_in_BT)[0] != jnp.shape(src_BS)[0]:
      raise ValueError(f"tgt_in: expected [B, T] token ids with the source's B="
                       f"{jnp.shape(src_BS)[0]}, got shape {tuple(jnp.shape(tgt_in_BT))}")
    k_enc, k_dec = (None, None) if rng is None else jax.random.split(rng)
    memory, carry = self.encode(params, src_BS, src_len_B, k_enc)
    B, T = tgt_in_BT.shape
    V = self.tgt_vocab

    def body(state, xs):
      carry, prev_logits = state
      gold_B, t = xs
      tokens = gold_B
      step_rng = None
      if k_dec is not None:
        step_rng = jax.random.fold_in(k_dec, t)
        k_use, k_draw, step_rng = jax.random.split(step_rng, 3)
        use_gold = jax.random.bernoulli(k_use, teacher_forcing, (B,)) | (t == 0)
        # the draw only when some row uses it: at teacher_forcing 1 (the default) none does
        drawn = jax.lax.cond(
            jnp.all(use_gold), lambda: gold_B,
            lambda: decoding.categorical(k_draw, jax.lax.stop_gradient(prev_logits)).astype(
                gold_B.dtype))
        tokens = jnp.where(use_gold, gold_B, drawn)
      logits, carry, weights = self.decoder_step(params, memory, carry, tokens, step_rng)
      return (carry, logits), (logits, weights)

    if self.remat:
      body = jax.checkpoint(body)
    init = (carry, jnp.zeros((B, V), jnp.float32))
    _, (logits_TBV, weights_TBS) = jax.lax.scan(body, init, (tgt_in_BT.T, jnp.arange(T)),
                                                unroll=self.unroll)
    return jnp.swapaxes(logits_TBV, 0, 1), jnp.swapaxes(weights_TBS, 0, 1)


def sequence_logprob(logits_BTV: Array, tgt_out_BT: Array, tgt_len_B: Array) -> Array:
  """log P(y | x) [B]: the masked sum of log p(y_t | y_<t, x) over each target's tokens."""
  logp = jax.nn.log_softmax(logits_BTV.astype(jnp.float32), -1)
  lp_BT = jnp.take_along_axis(logp, tgt_out_BT[..., None], -1)[..., 0]
  return jnp.where(time_mask(tgt_len_B, tgt_out_BT.shape[1]), lp_BT, 0.0).sum(-1)


__all__ = ["ATTENTIONS", "BOS", "BRIDGES", "EOS", "PAD", "DecoderCarry", "Memory", "Seq2Seq",
           "check_tokens", "sequence_logprob"]
