"""What the seq2seq tasks share: the model from a config, the loss, jitted decoding, error analysis.

Shape legend: B batch, S source time, T target time, V vocabulary, K beam.

A batch is a dict of numpy arrays: ``src`` [B, S], ``src_len`` [B],
``tgt_in`` [B, T] (BOS y_1 .. y_n), ``tgt_out`` [B, T] (y_1 .. y_n EOS),
``tgt_len`` [B] (n + 1) and the scalar ``teacher_forcing`` (the ratio r of
scheduled sampling for this step). Rows with ``tgt_len`` 0 are empty
(filling the last evaluation batch) and count for nothing.

Config fields read here: ``model.*`` (cell, hidden_sizes = the encoder's
layers, bidirectional, dropout, and the seq2seq fields embed_size,
decoder_sizes, attention, attn_size, output_size, input_feeding, bridge),
``task.teacher_forcing_start/end`` (r falls linearly from start at step 0 to
end at ``num_steps``) and ``decode.*`` (max_len, beam_size, length_penalty,
alpha).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from recurrent import decoding
from recurrent.checks import check_int
from recurrent.seq2seq import ATTENTIONS, BOS, BRIDGES, EOS, Seq2Seq, sequence_logprob
from recurrent.layers import time_mask
from recurrent.models import rnn_kwargs
from recurrent.tasks.base import token_metrics


def check_model_config(config) -> None:
  """Fails naming the field on a seq2seq ``model.*`` value the model would misread or ignore."""
  check_decoder_fields(config.model)
  m = config.model
  if m.merge != "concat" or m.residual:
    raise ValueError(f"model.merge, model.residual: the seq2seq encoder concatenates its directions "
                     f"and has no residual connections; must be 'concat' and False, got "
                     f"{m.merge!r} and {m.residual!r}")


def check_decoder_fields(m) -> None:
  """The decoder-side ``model.*`` fields (sizes, attention, bridge), also checked where another
  variant of the experiment (a CTC model) leaves them unused, so that switching to it cannot fail late."""
  if m.attention not in ATTENTIONS:
    raise ValueError(f"model.attention: must be one of {list(ATTENTIONS)}, got {m.attention!r}")
  if m.bridge not in BRIDGES:
    raise ValueError(f"model.bridge: must be one of {BRIDGES}, got {m.bridge!r}")
  for name in ("hidden_sizes", "decoder_sizes"):
    sizes = m[name]
    if not sizes:
      raise ValueError(f"model.{name}: must be a non-empty tuple of integers >= 1, got {sizes!r}")
    for i, h in enumerate(sizes):
      check_int(f"model.{name}[{i}]", h)
  for name in ("embed_size", "attn_size", "output_size"):
    check_int(f"model.{name}", m[name])


def check_decode_config(d) -> None:
  """Fails naming the field on a ``decode.*`` value (checked when the task is built, not at the first report)."""
  for name in ("max_len", "beam_size"):
    check_int(f"decode.{name}", d[name])
  if not 0 <= d.alpha < float("inf"):
    raise ValueError(f"decode.alpha: must be finite and >= 0, got {d.alpha!r}")
  if d.length_penalty not in decoding.LENGTH_PENALTIES:
    raise ValueError(f"decode.length_penalty: must be one of {decoding.LENGTH_PENALTIES}, "
                     f"got {d.length_penalty!r}")


def build_model(config, src_vocab: int, tgt_vocab: int, src_features: int = 0) -> Seq2Seq:
  """The config's Seq2Seq; ``src_features`` > 0 for a source of frames (speech) instead of ids."""
  check_model_config(config)
  m = config.model
  return Seq2Seq(src_vocab=src_vocab, tgt_vocab=tgt_vocab, embed_size=m.embed_size, cell=m.cell,
                 encoder_sizes=tuple(m.hidden_sizes), bidirectional=m.bidirectional,
                 decoder_sizes=tuple(m.decoder_sizes), attention=m.attention,
                 attn_size=m.attn_size, output_size=m.output_size,
                 input_feeding=m.input_feeding, bridge=m.bridge, dropout=m.dropout,
                 src_features=src_features, **stack_options(m))


def stack_options(m) -> dict:
  """``model.unroll/impl/remat/param_dtype`` as Seq2Seq fields (the dtype checked by name)."""
  cell_kwargs = rnn_kwargs(m).get("cell_kwargs", {})
  return {"unroll": m.unroll, "impl": m.impl, "remat": m.remat,
          "param_dtype": cell_kwargs.get("param_dtype")}


def teacher_forcing_ratio(config, step: int) -> np.float32:
  """r(step): linear from ``task.teacher_forcing_start`` to ``task.teacher_forcing_end``."""
  t = config.task
  for name in ("teacher_forcing_start", "teacher_forcing_end"):
    if not 0.0 <= t[name] <= 1.0:
      raise ValueError(f"task.{name}: must be in [0, 1], got {t[name]!r}")
  frac = min(step / max(config.num_steps, 1), 1.0)
  return np.float32(t.teacher_forcing_start + frac * (t.teacher_forcing_end - t.teacher_forcing_start))


def make_loss_fn(model: Seq2Seq):
  """(params, batch, rng) -> (mean token NLL, {loss, token_accuracy}) over real target tokens."""

  def loss_fn(params, batch, rng):
    src_len = jnp.maximum(batch["src_len"], 1)  # empty filler rows: any length, masked below
    logits, _ = model.forward(params, batch["src"], src_len, batch["tgt_in"], rng,
                              batch["teacher_forcing"])
    mask_BT = time_mask(batch["tgt_len"], batch["tgt_out"].shape[1])
    loss, metrics = token_metrics(logits, batch["tgt_out"], mask_BT)
    return loss, {"loss": metrics["loss"], "token_accuracy": metrics["accuracy"]}

  return loss_fn


class Decoder:
  """Jitted greedy and beam decoding and scoring of one model, in fixed-size batches."""

  def __init__(self, model: Seq2Seq, decode_config, batch_size: int):
    self.model, self.batch_size = model, batch_size
    d = decode_config
    check_decode_config(d)
    self.max_len, self.beam_size = d.max_len, d.beam_size
    self.penalty, self.alpha = d.length_penalty, d.alpha

    @jax.jit
    def greedy(params, src, src_len):
      memory, carry = model.encode(params, src, src_len)
      bos = jnp.full((src.shape[0],), BOS)
      return decoding.greedy(model.step_fn(params, memory), carry, bos, self.max_len, EOS)

    @jax.jit
    def beam(params, src, src_len):
      memory, carry = model.encode(params, src, src_len)
      step = model.step_fn(params, decoding.expand_beam(memory, self.beam_size))
      bos = jnp.full((src.shape[0],), BOS)
      return decoding.beam_search(step, carry, bos, self.beam_size, self.max_len, EOS,
                                  self.penalty, self.alpha)

    @jax.jit
    def score(params, src, src_len, tgt_out, tgt_len):
      tgt_in = jnp.concatenate([jnp.full_like(tgt_out[:, :1], BOS), tgt_out[:, :-1]], 1)
      logits, weights = model.forward(params, src, src_len, tgt_in)
      return sequence_logprob(logits, tgt_out, tgt_len), weights

    self._greedy, self._beam, self._score = greedy, beam, score

  def _batched(self, fn, arrays: list[np.ndarray]):
    """Runs ``fn`` over fixed-size batches (the last one filled by repeating row 0), concatenated."""
    N, B = len(arrays[0]), self.batch_size
    if N == 0:
      raise ValueError("decoding: no rows to decode (an empty selection of sentences)")
    outs = []
    for i in range(0, N, B):
      chunk = [a[i:i + B] for a in arrays]
      n = len(chunk[0])
      if n < B:
        chunk = [np.concatenate([c, np.repeat(c[:1], B - n, 0)]) for c in chunk]
      outs.append(jax.tree.map(lambda x: np.asarray(x)[:n], fn(*chunk)))
    return jax.tree.map(lambda *xs: np.concatenate(xs), *outs)

  def greedy(self, params, src, src_len) -> decoding.DecodeOutput:
    return self._batched(functools.partial(self._greedy, params), [src, src_len])

  def beam(self, params, src, src_len) -> decoding.BeamOutput:
    return self._batched(functools.partial(self._beam, params), [src, src_len])

  def score(self, params, src, src_len, tgt_out, tgt_len):
    """(log P(y|x) [N], attention weights [N, T, S]) of the given targets."""
    return self._batched(functools.partial(self._score, params), [src, src_len, tgt_out, tgt_len])

  def normalised(self, logprob, lengths) -> np.ndarray:
    return np.asarray(logprob / decoding.length_penalty(jnp.asarray(lengths), self.penalty,
                                                         self.alpha))


def exact_match(tokens_NT: np.ndarray, lengths_N: np.ndarray, tgt_out: np.ndarray,
                tgt_len: np.ndarray) -> np.ndarray:
  """[N] bool: the decoded sequence (with its EOS) equals the reference."""
  T = max(tokens_NT.shape[1], tgt_out.shape[1])
  a = np.pad(tokens_NT, ((0, 0), (0, T - tokens_NT.shape[1])))
  b = np.pad(tgt_out, ((0, 0), (0, T - tgt_out.shape[1])))
  m = np.arange(T)[None, :] < tgt_len[:, None]
  return (lengths_N == tgt_len) & np.all((a == b) | ~m, axis=1)


def error_analysis(ref_score: np.ndarray, hyp_score: np.ndarray, correct: np.ndarray) -> dict:
  """Seed 001's attribution of each wrong output to the search or to the model.

  For every example whose beam output y_hat differs from the reference y*:
  s(y*) > s(y_hat) means the model prefers y* but the search missed it (a
  search error); otherwise the model itself ranks its wrong output at least
  as high (a model error). ``s`` is the score the search maximises (the
  length-normalised log-probability when normalisation is on).
  """
  wrong = ~correct
  n = int(wrong.sum())
  search = int((wrong & (ref_score > hyp_score)).sum())
  return {"errors": n, "search_errors": search, "model_errors": n - search,
          "fraction_search": search / n if n else 0.0,
          "fraction_model": (n - search) / n if n else 0.0}
