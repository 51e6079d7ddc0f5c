"""Decoding throughput: greedy and beam search on a translation-sized attention seq2seq model.

Shape legend: B batch (sentences), S source length, T output tokens, V vocabulary.

The model is ``recurrent.seq2seq.Seq2Seq`` (bidirectional LSTM encoder, LSTM
decoder, Bahdanau attention) with random weights and random source ids; every
runner decodes the same B sentences to exactly T tokens (no EOS can stop a
row early: greedy runs with ``eos=None``, beam search's EOS id is one no
random source uses and its scores are finite, so rows rarely finish; tokens
are counted as B * T either way). Runners:

  greedy            encode + ``decoding.greedy``: one jitted ``lax.while_loop``
  greedy_hostloop   the common baseline: a jitted encoder and a jitted single
                    decoder step called T times from Python (argmax on device)
  beam<K>           encode + ``decoding.beam_search`` with beam width K, one
                    jitted ``lax.while_loop`` (K hypotheses per sentence)

Peak memory: the compiled program's memory analysis (the host loop's is that
of its larger program, the encoder or one step).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from recurrent import decoding
from recurrent.bench.impls import Runner
from recurrent.seq2seq import BOS, EOS, Seq2Seq


def model(V: int, embed: int, enc: int, dec: int) -> Seq2Seq:
  return Seq2Seq(src_vocab=V, tgt_vocab=V, embed_size=embed, encoder_sizes=(enc,),
                 bidirectional=True, decoder_sizes=(dec,), attention="bahdanau",
                 attn_size=enc, output_size=dec)


def _peak(compiled) -> int:
  m = compiled.memory_analysis()
  return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
             - m.alias_size_in_bytes)


def build(kind: str, B: int, S: int, T: int, V: int, embed: int = 128, enc: int = 128,
          dec: int = 256, beam_size: int = 5, seed: int = 0) -> Runner:
  """The runner of ``kind`` ("greedy", "greedy_hostloop" or "beam"); see the module docstring."""
  m = model(V, embed, enc, dec)
  params = m.init(jax.random.key(seed))
  rng = np.random.default_rng(seed)
  src = jnp.asarray(rng.integers(4, V, (B, S)), jnp.int32)
  src_len = jnp.full((B,), S, jnp.int32)
  bos = jnp.full((B,), BOS, jnp.int32)
  out = {}

  if kind == "greedy":
    @jax.jit
    def run(params, src, src_len):
      memory, carry = m.encode(params, src, src_len)
      return decoding.greedy(m.step_fn(params, memory), carry, bos, T).logprob
    compiled = run.lower(params, src, src_len).compile()
    peak = _peak(compiled)

    def step():
      out["logprob"] = jax.block_until_ready(compiled(params, src, src_len))

  elif kind == "beam":
    @jax.jit
    def run(params, src, src_len):
      memory, carry = m.encode(params, src, src_len)
      memory = decoding.expand_beam(memory, beam_size)
      return decoding.beam_search(m.step_fn(params, memory), carry, bos, beam_size, T,
                                  eos=EOS).logprob[:, 0]
    compiled = run.lower(params, src, src_len).compile()
    peak = _peak(compiled)

    def step():
      out["logprob"] = jax.block_until_ready(compiled(params, src, src_len))

  elif kind == "greedy_hostloop":
    encode = jax.jit(m.encode).lower(params, src, src_len).compile()
    memory, carry0 = encode(params, src, src_len)

    @functools.partial(jax.jit, donate_argnums=(2,))
    def one_step(params, memory, carry, tokens, logprob):
      logits, carry, _ = m.decoder_step(params, memory, carry, tokens)
      logp = jax.nn.log_softmax(logits, -1)
      nxt = decoding.argmax(logits, -1).astype(jnp.int32)   # as decoding.greedy
      return carry, nxt, logprob + jnp.take_along_axis(logp, nxt[:, None], -1)[:, 0]

    zero = jnp.zeros((B,), jnp.float32)
    dec_step = one_step.lower(params, memory, carry0, bos, zero).compile()
    peak = max(_peak(encode), _peak(dec_step))

    def step():
      memory, carry = encode(params, src, src_len)
      tokens, logprob = bos, zero
      for _ in range(T):
        carry, tokens, logprob = dec_step(params, memory, carry, tokens, logprob)
      out["logprob"] = jax.block_until_ready(logprob)

  else:
    raise ValueError(f"kind: must be greedy, greedy_hostloop or beam, got {kind!r}")
  return Runner(step, peak, lambda: float(jnp.mean(out["logprob"])))
