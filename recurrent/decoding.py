"""Decoding driven by a step callback: greedy, sampling, beam search and sequence scores.

Shape legend: B batch, K beam, T output time, V vocabulary.

Every function here is model-agnostic. A model is seen only through

    step_fn(tokens_B, carry) -> (logits_BV, carry)

which reads the previous output token of each row and returns the logits of
the next one (a seq2seq decoder closing over its encoder memory, or a
language model). Strings and tokenisation stay with the caller. The loops are
``jax.lax.while_loop`` over a NamedTuple state with fixed shapes, so each
function traces once and runs inside ``jax.jit`` (jit the caller: the step
function is a Python closure). Loops stop early once every row has emitted
``eos``; positions after a row's end hold ``pad``.

Conventions: the returned tokens do not include the first input token
(``bos``); a sequence's length counts its tokens up to and including ``eos``
(``max_len`` when it never emitted one); its log-probability is
sum_t log p(y_t | y_<t, x) over those tokens, under the model's own softmax
(temperature 1), whatever the search or sampling used.

Length normalisation (beam search only, used to rank finished hypotheses):

    "none":     s(y) = log P(y|x)
    "average":  s(y) = log P(y|x) / |y|
    "wu":       s(y) = log P(y|x) / lp(y),   lp(y) = ((5 + |y|) / 6) ** alpha
                (Wu et al. 2016, "Google's neural machine translation system", eq. 14)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from recurrent.checks import check_int

Array = jax.Array
StepFn = Callable[[Array, Any], tuple[Array, Any]]

LENGTH_PENALTIES = ("none", "average", "wu")


def _is_token(v) -> bool:
  return not isinstance(v, bool) and isinstance(v, int) and v >= 0


def _check_bos(bos) -> None:
  if jnp.ndim(bos) != 1:
    raise ValueError(f"bos: expected the first input token of each row, shape [B], got shape "
                     f"{tuple(jnp.shape(bos))}")
  if not jnp.issubdtype(jnp.result_type(bos), jnp.integer):
    raise ValueError(f"bos: expected integer token ids, got dtype {jnp.result_type(bos)}")


def _check_common(max_len, bos, eos, pad) -> None:
  check_int("max_len", max_len)
  _check_bos(bos)
  if eos is not None and not _is_token(eos):
    raise ValueError(f"eos: must be a token id >= 0 or None, got {eos!r}")
  if not _is_token(pad):
    raise ValueError(f"pad: must be a token id >= 0, got {pad!r}")


def _check_vocab(logits_BV, eos) -> None:
  """At trace time (before any compile): the step function's logits are [B, V] and ``eos`` < V."""
  if jnp.ndim(logits_BV) != 2:
    raise ValueError(f"step_fn: must return logits of shape [B, V], got shape "
                     f"{tuple(jnp.shape(logits_BV))}")
  if eos is not None and eos >= logits_BV.shape[-1]:
    raise ValueError(f"eos: must be a token id < V={logits_BV.shape[-1]} (the step function's "
                     f"vocabulary), got {eos}")


def argmax(x: Array, axis: int = -1) -> Array:
  """``jnp.argmax(x, axis)`` (the first maximum; the first NaN if there is one) as two plain reductions.

      m = max(x),   argmax = min{i : x_i = m}

  XLA:CPU does not vectorise the (value, index) reduce that ``jnp.argmax``
  lowers to: a greedy step's argmax over [16, 10,000] logits took 0.28 ms,
  as long as the step's two LSTM layers (docs/PERFORMANCE.md, session 8).
  Equal to ``jnp.argmax``, ties, -inf and NaN included (tests/test_decoding.py).
  """
  x = jnp.asarray(x)
  if not -x.ndim <= axis < x.ndim:
    raise ValueError(f"axis: must be in [{-x.ndim}, {x.ndim}) for an array of shape {x.shape}, "
                     f"got {axis}")
  axis = axis % x.ndim
  m = jnp.max(x, axis=axis, keepdims=True)
  hit = jnp.where(jnp.isnan(m), jnp.isnan(x), x == m)
  index = jax.lax.broadcasted_iota(jnp.int32, x.shape, axis)
  return jnp.min(jnp.where(hit, index, x.shape[axis]), axis=axis)


def categorical(key: Array, logits: Array, axis: int = -1) -> Array:
  """A sample of softmax(logits) along ``axis``: ``jax.random.categorical(key, logits, axis)``.

  The same Gumbel-max draw, argmax(logits + Gumbel noise from ``key``), with
  the argmax as two plain reductions (:func:`argmax`), so the samples are
  those of ``jax.random.categorical`` for the same key (tested), faster on a CPU.
  """
  logits = jnp.asarray(logits)
  return argmax(jax.random.gumbel(key, logits.shape, logits.dtype) + logits, axis=axis)


def expand_beam(tree: Any, beam_size: int) -> Any:
  """Repeats every row K times: leaves [B, ...] -> [B * K, ...] (row b's copies are adjacent)."""
  return jax.tree.map(lambda x: jnp.repeat(x, beam_size, axis=0), tree)


def top_k_mask(logits_BV: Array, top_k: int) -> Array:
  """Keeps the k largest logits of each row, sets the others to -inf (k = 0 keeps all)."""
  if top_k == 0 or top_k >= logits_BV.shape[-1]:
    return logits_BV
  kth = jax.lax.top_k(logits_BV, top_k)[0][:, -1:]                  # [B, 1]
  return jnp.where(logits_BV >= kth, logits_BV, -jnp.inf)


class DecodeOutput(NamedTuple):
  """tokens [B, T] (``pad`` after the end), lengths [B], logprob [B] = log P(tokens | x)."""

  tokens: Array
  lengths: Array
  logprob: Array


class _LoopState(NamedTuple):
  t: Array             # [] the step being decoded
  last_B: Array        # the previous token of each row
  carry: Any
  tokens_BT: Array
  done_B: Array        # row has emitted eos
  lengths_B: Array
  logprob_B: Array
  rng: Array


def _decode(step_fn: StepFn, init_carry, bos: Array, max_len: int, eos: int | None, pad: int,
            choose: Callable[[Array, Array], Array], rng: Array) -> DecodeOutput:
  """The loop shared by greedy and sampling: ``choose(logits_BV, key) -> tokens_B``."""
  bos = jnp.asarray(bos, jnp.int32)
  B = bos.shape[0]
  state = _LoopState(
      t=jnp.zeros((), jnp.int32), last_B=bos, carry=init_carry,
      tokens_BT=jnp.full((B, max_len), pad, jnp.int32), done_B=jnp.zeros((B,), bool),
      lengths_B=jnp.zeros((B,), jnp.int32), logprob_B=jnp.zeros((B,), jnp.float32), rng=rng)

  def cond(s: _LoopState):
    return (s.t < max_len) & ~jnp.all(s.done_B)

  def body(s: _LoopState):
    logits_BV, carry = step_fn(s.last_B, s.carry)
    _check_vocab(logits_BV, eos)
    logp_BV = jax.nn.log_softmax(logits_BV.astype(jnp.float32), axis=-1)
    tok_B = choose(logits_BV, jax.random.fold_in(s.rng, s.t)).astype(jnp.int32)
    live_B = ~s.done_B
    tok_B = jnp.where(live_B, tok_B, pad)
    tok_logp_B = jnp.take_along_axis(logp_BV, tok_B[:, None], axis=-1)[:, 0]
    done_B = s.done_B if eos is None else s.done_B | (tok_B == eos)
    return _LoopState(
        t=s.t + 1, last_B=tok_B, carry=carry,
        tokens_BT=s.tokens_BT.at[:, s.t].set(tok_B),
        done_B=done_B,
        lengths_B=s.lengths_B + live_B.astype(jnp.int32),
        logprob_B=s.logprob_B + jnp.where(live_B, tok_logp_B, 0.0), rng=s.rng)

  s = jax.lax.while_loop(cond, body, state)
  return DecodeOutput(s.tokens_BT, s.lengths_B, s.logprob_B)


def greedy(step_fn: StepFn, init_carry, bos: Array, max_len: int, eos: int | None = None,
           pad: int = 0) -> DecodeOutput:
  """y_t = argmax_v p(v | y_<t, x) until ``eos`` or ``max_len`` tokens.

  Args:
    step_fn: (tokens_B, carry) -> (logits_BV, carry).
    init_carry: the carry before the first step.
    bos: [B] the first input token of each row (BOS, or a language model's last prompt token).
    max_len: the most tokens generated (>= 1).
    eos: the end token, or None to always generate ``max_len`` tokens.
    pad: the token written after a row's end.
  """
  _check_common(max_len, bos, eos, pad)
  return _decode(step_fn, init_carry, bos, max_len, eos, pad,
                 lambda logits, key: argmax(logits, axis=-1), jax.random.key(0))


def sample(step_fn: StepFn, init_carry, rng: Array, bos: Array, max_len: int,
           eos: int | None = None, temperature: float = 1.0, top_k: int = 0,
           pad: int = 0) -> DecodeOutput:
  """y_t ~ softmax(top_k(logits) / temperature), the k largest logits kept (k = 0: all).

  ``rng`` is folded with the step index, so a row's sample is a pure function
  of (rng, step). ``logprob`` is the model's (temperature 1) log-probability
  of the sampled sequence. Arguments as in :func:`greedy`.
  """
  _check_common(max_len, bos, eos, pad)
  if not isinstance(temperature, jax.core.Tracer) and not 0 < temperature < float("inf"):
    raise ValueError(f"temperature: must be finite and > 0, got {temperature!r}")
  typed = isinstance(rng, jax.Array) and jnp.issubdtype(rng.dtype, jax.dtypes.prng_key)
  legacy = isinstance(rng, jax.Array) and rng.dtype == jnp.uint32 and rng.shape == (2,)
  if not ((typed and rng.ndim == 0) or legacy):
    raise ValueError(f"rng: expected one key from jax.random.key(seed), got "
                     f"{getattr(rng, 'dtype', type(rng).__name__)} of shape {jnp.shape(rng)}")
  check_int("top_k", top_k, 0, note="0 keeps every token")

  def choose(logits_BV, key):
    logits_BV = top_k_mask(logits_BV.astype(jnp.float32), top_k) / temperature
    return categorical(key, logits_BV, axis=-1)

  return _decode(step_fn, init_carry, bos, max_len, eos, pad, choose, rng)


def length_penalty(lengths: Array, kind: str, alpha: float = 0.6) -> Array:
  """The divisor of log P(y|x) in the normalised score (see the module docstring)."""
  lengths = jnp.maximum(lengths, 1).astype(jnp.float32)
  if kind == "none":
    return jnp.ones_like(lengths)
  if kind == "average":
    return lengths
  if kind == "wu":
    return ((5.0 + lengths) / 6.0) ** alpha
  raise ValueError(f"length_penalty: must be one of {LENGTH_PENALTIES}, got {kind!r}")


class BeamOutput(NamedTuple):
  """Hypotheses sorted best first by ``scores``: tokens [B, K, T], lengths, scores, logprob [B, K]."""

  tokens: Array
  lengths: Array
  scores: Array
  logprob: Array


class _BeamState(NamedTuple):
  t: Array
  carry: Any           # leaves [B * K, ...]
  tokens_BKT: Array
  logprob_BK: Array    # log P(prefix | x); -inf for an empty slot
  done_BK: Array       # the hypothesis has emitted eos
  lengths_BK: Array


def beam_search(step_fn: StepFn, init_carry, bos: Array, beam_size: int, max_len: int,
                eos: int, length_penalty_kind: str = "none", alpha: float = 0.6,
                pad: int = 0) -> BeamOutput:
  """Batched beam search (Sutskever et al. 2014; seed 001), fixed shapes under ``while_loop``.

  At every step the K highest-probability hypotheses are kept among all
  one-token extensions of the unfinished ones and the finished ones
  themselves (a finished hypothesis stays in the beam, unchanged, until
  pushed out by better ones). A hypothesis finishes when it emits ``eos``; one
  that reaches ``max_len`` tokens without it is taken as finished there. The
  search stops when all K hypotheses of every row are finished. The beam is
  ranked by log P(prefix | x) during the search (so K = 1 is exactly greedy
  search); the finished hypotheses are then ranked by the normalised score
  s(y) (module docstring), as in the seed's "compute the normalised objective
  over the sentences in the beam and pick the best".

  Args:
    step_fn: (tokens_[B*K], carry) -> (logits_[B*K]V, carry); rows b*K .. b*K+K-1 are row b's beam.
    init_carry: the carry for B rows; it is repeated K times (:func:`expand_beam`).
      Anything the step function closes over (an encoder's memory) must be
      expanded by the caller the same way.
    bos: [B] the first input token of each row.
    beam_size: K >= 1.
    max_len: the most tokens in a hypothesis (>= 1).
    eos: the end token.
    length_penalty_kind: "none", "average" or "wu".
    alpha: the exponent of the "wu" penalty.
    pad: the token written after a hypothesis' end.

  Returns:
    a :class:`BeamOutput`, best hypothesis first in each row.
  """
  _check_common(max_len, bos, eos, pad)
  if eos is None:
    raise ValueError("eos: beam search needs an end token, got None")
  check_int("beam_size", beam_size)
  if length_penalty_kind not in LENGTH_PENALTIES:
    raise ValueError(
        f"length_penalty_kind: must be one of {LENGTH_PENALTIES}, got {length_penalty_kind!r}")
  if not isinstance(alpha, jax.core.Tracer) and not 0 <= alpha < float("inf"):
    raise ValueError(f"alpha: must be finite and >= 0, got {alpha!r}")
  K = beam_size
  bos = jnp.asarray(bos, jnp.int32)
  B = bos.shape[0]
  # Only slot 0 is live at the start, so the K copies do not fill the beam with duplicates.
  logprob0 = jnp.where(jnp.arange(K)[None, :] == 0, 0.0, -jnp.inf) * jnp.ones((B, 1))
  state = _BeamState(
      t=jnp.zeros((), jnp.int32), carry=expand_beam(init_carry, K),
      tokens_BKT=jnp.full((B, K, max_len), pad, jnp.int32),
      logprob_BK=logprob0.astype(jnp.float32), done_BK=jnp.zeros((B, K), bool),
      lengths_BK=jnp.zeros((B, K), jnp.int32))
  last0 = jnp.repeat(bos, K)

  def last_tokens(s: _BeamState) -> Array:
    prev = s.tokens_BKT[:, :, jnp.maximum(s.t - 1, 0)].reshape(B * K)
    return jnp.where(s.t == 0, last0, prev)

  def cond(s: _BeamState):
    settled = s.done_BK | jnp.isneginf(s.logprob_BK)
    return (s.t < max_len) & ~jnp.all(settled)

  def body(s: _BeamState):
    logits, carry = step_fn(last_tokens(s), s.carry)
    _check_vocab(logits, eos)
    V = logits.shape[-1]
    logp_BKV = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(B, K, V)
    # A finished hypothesis has one extension, itself (token pad, log-prob 0).
    keep_V = jnp.where(jnp.arange(V) == 0, 0.0, -jnp.inf)[None, None, :]
    ext_BKV = jnp.where(s.done_BK[..., None], keep_V, logp_BKV)
    cand_BKV = s.logprob_BK[..., None] + ext_BKV
    top_logp_BK, flat_BK = jax.lax.top_k(cand_BKV.reshape(B, K * V), K)
    parent_BK, tok_BK = flat_BK // V, flat_BK % V
    was_done_BK = jnp.take_along_axis(s.done_BK, parent_BK, axis=1)
    tok_BK = jnp.where(was_done_BK, pad, tok_BK).astype(jnp.int32)
    tokens_BKT = jnp.take_along_axis(s.tokens_BKT, parent_BK[..., None], axis=1)
    tokens_BKT = tokens_BKT.at[:, :, s.t].set(tok_BK)
    lengths_BK = jnp.take_along_axis(s.lengths_BK, parent_BK, axis=1) + (~was_done_BK)
    done_BK = was_done_BK | (tok_BK == eos)
    flat_parent = (parent_BK + K * jnp.arange(B)[:, None]).reshape(B * K)
    carry = jax.tree.map(lambda x: x[flat_parent], carry)
    return _BeamState(s.t + 1, carry, tokens_BKT, top_logp_BK, done_BK, lengths_BK)

  s = jax.lax.while_loop(cond, body, state)
  scores_BK = s.logprob_BK / length_penalty(s.lengths_BK, length_penalty_kind, alpha)
  order_BK = jnp.argsort(-scores_BK, axis=1)
  take = lambda x: jnp.take_along_axis(x, order_BK.reshape(order_BK.shape + (1,) * (x.ndim - 2)),
                                       axis=1)
  return BeamOutput(take(s.tokens_BKT), take(s.lengths_BK), take(scores_BK), take(s.logprob_BK))


def score(step_fn: StepFn, init_carry, bos: Array, tokens_BT: Array, lengths_B: Array) -> Array:
  """log P(y | x) = sum_{t < L} log p(y_t | y_<t, x), teacher-forced through ``step_fn``: [B].

  ``tokens_BT`` holds each sequence (with its ``eos``, if it has one) in its
  first ``lengths_B`` positions.
  """
  _check_bos(bos)
  if jnp.ndim(tokens_BT) != 2 or jnp.shape(tokens_BT)[1] < 1:
    raise ValueError(f"tokens_BT: expected shape [B, T] with T >= 1, got {tuple(jnp.shape(tokens_BT))}")
  if not jnp.issubdtype(jnp.result_type(tokens_BT), jnp.integer):
    raise ValueError(f"tokens_BT: expected integer token ids, got dtype {jnp.result_type(tokens_BT)}")
  B, T = jnp.shape(tokens_BT)
  if jnp.shape(bos) != (B,) or jnp.shape(lengths_B) != (B,):
    raise ValueError(f"bos, lengths_B: expected shape [B]=({B},) each (tokens_BT is {(B, T)}), "
                     f"got {tuple(jnp.shape(bos))} and {tuple(jnp.shape(lengths_B))}")
  if not jnp.issubdtype(jnp.result_type(lengths_B), jnp.integer):
    raise ValueError(f"lengths_B: expected integers, got dtype {jnp.result_type(lengths_B)}")
  if not isinstance(lengths_B, jax.core.Tracer) and B:
    lo, hi = int(np.min(np.asarray(lengths_B))), int(np.max(np.asarray(lengths_B)))
    if lo < 0 or hi > T:
      raise ValueError(f"lengths_B: must be in [0, T={T}], got a length of {lo if lo < 0 else hi}")
  if not isinstance(tokens_BT, jax.core.Tracer) and B:
    lo = int(np.min(np.asarray(tokens_BT)))
    if lo < 0:
      raise ValueError(f"tokens_BT: token ids must be >= 0, got {lo}")
  tokens_BT = jnp.asarray(tokens_BT, jnp.int32)
  hi_token = None if isinstance(tokens_BT, jax.core.Tracer) or not B else int(np.max(np.asarray(tokens_BT)))
  inputs_TB = jnp.concatenate([jnp.asarray(bos, jnp.int32)[:, None], tokens_BT[:, :-1]], 1).T

  def body(carry, xs):
    inp_B, tgt_B, t = xs
    logits_BV, carry = step_fn(inp_B, carry)
    _check_vocab(logits_BV, None)
    if hi_token is not None and hi_token >= logits_BV.shape[-1]:
      raise ValueError(f"tokens_BT: token ids must be < V={logits_BV.shape[-1]} (the step "
                       f"function's vocabulary), got {hi_token}")
    logp_BV = jax.nn.log_softmax(logits_BV.astype(jnp.float32), axis=-1)
    lp_B = jnp.take_along_axis(logp_BV, tgt_B[:, None], axis=-1)[:, 0]
    return carry, jnp.where(t < lengths_B, lp_B, 0.0)

  _, lp_TB = jax.lax.scan(body, init_carry, (inputs_TB, tokens_BT.T, jnp.arange(T)))
  return lp_TB.sum(0)


__all__ = ["BeamOutput", "DecodeOutput", "LENGTH_PENALTIES", "beam_search", "expand_beam",
           "greedy", "length_penalty", "sample", "score", "top_k_mask"]
