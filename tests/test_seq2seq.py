"""Attention against NumPy equations; the encoder-decoder's masking, bridge, teacher forcing, bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrent import decoding
from recurrent.attention import Attention
from recurrent.seq2seq import BOS, EOS, Seq2Seq, sequence_logprob

B, S, T, VS, VT = 3, 6, 5, 11, 9
SRC_LEN = np.array([6, 3, 1])


def np_softmax(z):
  z = z - z.max()
  return np.exp(z) / np.exp(z).sum()


@pytest.mark.parametrize("kind", ["bahdanau", "luong_dot", "luong_general"])
def test_attention_matches_numpy_equations(kind):
  Q = E = 4
  att = Attention(kind, Q, E, attn_size=5)
  p = att.init(jax.random.key(0))
  r = np.random.default_rng(0)
  q, keys = r.normal(size=(B, Q)).astype(np.float32), r.normal(size=(B, S, E)).astype(np.float32)
  mask = np.arange(S)[None, :] < SRC_LEN[:, None]
  ctx, w = att(p, q, keys, att.precompute(p, keys), mask)
  pn = jax.tree.map(np.asarray, p)
  for b in range(B):
    L = SRC_LEN[b]
    k = keys[b, :L].astype(np.float64)
    if kind == "bahdanau":
      e = np.tanh(q[b] @ pn["W_q"] + k @ pn["W_k"] + pn["b"]) @ pn["v"]
    elif kind == "luong_dot":
      e = k @ q[b]
    else:
      e = (k @ pn["W_a"]) @ q[b]
    a = np_softmax(e)
    np.testing.assert_allclose(w[b, :L], a, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(w[b, L:], 0.0)
    np.testing.assert_allclose(ctx[b], a @ k, rtol=1e-5, atol=1e-5)


# Jitted with the (hashable, frozen) model static, so that equal shapes share one compile.
@functools.partial(jax.jit, static_argnums=0)
def forward(model, p, src, src_len, tgt_in, rng=None, teacher_forcing=1.0):
  return model.forward(p, src, src_len, tgt_in, rng, teacher_forcing)


@functools.partial(jax.jit, static_argnums=0)
def encode(model, p, src, src_len):
  return model.encode(p, src, src_len)


def make_kw(**kw):
  return {"embed_size": 6, "encoder_sizes": (5,), "decoder_sizes": (7,), "attn_size": 4,
          "output_size": 8, "cell": "lstm", "bidirectional": True, **kw}


def make_model(attention="bahdanau", **kw):
  model = Seq2Seq(VS, VT, attention=attention, **make_kw(**kw))
  return model, model.init(jax.random.key(1))


def batch(seed=0):
  r = np.random.default_rng(seed)
  src = r.integers(3, VS, size=(B, S))
  src = np.where(np.arange(S)[None, :] < SRC_LEN[:, None], src, 0)
  tgt_in = np.concatenate([np.full((B, 1), BOS), r.integers(3, VT, size=(B, T - 1))], 1)
  return src, tgt_in


@functools.partial(jax.jit, static_argnums=0)
def encode_and_forward(model, p, src, src_len, tgt_in):
  return model.encode(p, src, src_len)[0], *model.forward(p, src, src_len, tgt_in)


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general"])
def test_source_padding_changes_neither_encoder_nor_attention(attention):
  model, p = make_model(attention)
  src, tgt_in = batch()
  memory, logits, w = encode_and_forward(model, p, src, SRC_LEN, tgt_in)
  # More padding columns, holding arbitrary (valid) ids, change nothing.
  garbage = np.random.default_rng(5).integers(0, VS, size=(B, S + 3))
  long_src = np.where(np.arange(S + 3)[None, :] < SRC_LEN[:, None], np.pad(src, ((0, 0), (0, 3))),
                      garbage)
  memory2, logits2, w2 = encode_and_forward(model, p, long_src, SRC_LEN, tgt_in)
  np.testing.assert_allclose(memory2.keys_BSE[:, :S], memory.keys_BSE, atol=1e-6)
  np.testing.assert_array_equal(memory2.keys_BSE[:, S:], 0.0)
  np.testing.assert_allclose(logits2, logits, atol=1e-5)
  np.testing.assert_allclose(w2[:, :, :S], w, atol=1e-6)
  np.testing.assert_array_equal(w2[:, :, S:], 0.0)
  np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
  # And a sentence alone, without any padding, gives the same result.
  b, L = 1, SRC_LEN[1]
  lg, wb = forward(model, p, src[b:b + 1, :L], SRC_LEN[b:b + 1], tgt_in[b:b + 1])
  np.testing.assert_allclose(lg[0], logits[b], atol=1e-5)
  np.testing.assert_allclose(wb[0], w[b, :, :L], atol=1e-6)
  np.testing.assert_array_equal(w[b, :, L:], 0.0)


@pytest.mark.parametrize("attention,input_feeding", [("none", False), ("bahdanau", False),
                                                     ("luong_general", True)])
def test_teacher_forced_logprob_equals_stepwise_decoding_score(attention, input_feeding):
  model, p = make_model(attention, input_feeding=input_feeding, cell="gru")
  src, tgt_in = batch(1)
  tgt_out = np.concatenate([tgt_in[:, 1:], np.full((B, 1), EOS)], 1)
  tgt_len = np.array([5, 2, 4])
  logits, _ = forward(model, p, src, SRC_LEN, tgt_in)
  memory, carry = encode(model, p, src, SRC_LEN)
  want = decoding.score(model.step_fn(p, memory), carry, jnp.full((B,), BOS), tgt_out, tgt_len)
  np.testing.assert_allclose(sequence_logprob(logits, tgt_out, tgt_len), want, rtol=1e-5,
                             atol=1e-5)


def test_beam_search_over_a_seq2seq_model_expands_the_memory():
  model, p = make_model("luong_general")
  src, _ = batch(2)
  K = 3

  @jax.jit
  def run(p, src, src_len):
    memory, carry = model.encode(p, src, src_len)
    step = model.step_fn(p, decoding.expand_beam(memory, K))
    out = decoding.beam_search(step, carry, jnp.full((B,), BOS), K, 6, EOS)
    lp = decoding.score(model.step_fn(p, memory), carry, jnp.full((B,), BOS),
                        out.tokens[:, 0], out.lengths[:, 0])
    return out, lp

  out, lp = run(p, src, SRC_LEN)
  np.testing.assert_allclose(out.logprob[:, 0], lp, rtol=1e-5, atol=1e-5)


def test_teacher_forcing_ratio_zero_ignores_the_reference_after_the_first_token():
  model, p = make_model("bahdanau")
  src, tgt_in = batch(3)
  other = tgt_in.copy()
  other[:, 1:] = (tgt_in[:, 1:] - 3 + 1) % (VT - 3) + 3
  rng = jax.random.key(7)
  f = lambda t, r: forward(model, p, src, SRC_LEN, t, rng, r)[0]
  np.testing.assert_allclose(f(tgt_in, 0.0), f(other, 0.0), atol=1e-6)
  assert not np.allclose(f(tgt_in, 1.0), f(other, 1.0), atol=1e-3)
  np.testing.assert_allclose(f(tgt_in, 1.0), forward(model, p, src, SRC_LEN, tgt_in)[0], atol=1e-5)


def test_bridge_copy_learned_and_zeros():
  model, p = make_model("none", bidirectional=False, encoder_sizes=(7,), decoder_sizes=(7,))
  assert model.bridge_kind == "copy" and "bridge" not in p
  src, _ = batch()
  _, carry = encode(model, p, src, SRC_LEN)
  carries, _ = model.encoder.apply(p["encoder"], p["src_embed"][src], SRC_LEN)
  np.testing.assert_allclose(carry.layers[0].h, carries[0].h)
  model, p = make_model("none", encoder_sizes=(5, 5))  # bidirectional 2x5 -> 7: learned bridge
  assert model.bridge_kind == "learned"
  memory, carry = encode(model, p, src, SRC_LEN)
  want = np.tanh(np.asarray(memory.summary_BE) @ np.asarray(p["bridge"][0][1]["W"]))
  np.testing.assert_allclose(carry.layers[0].c, want, atol=1e-5)
  with pytest.raises(ValueError, match="bridge"):
    make_model("none", bridge="copy")


def test_bad_input_fails_clearly():
  model, p = make_model("bahdanau")
  src, tgt_in = batch()
  with pytest.raises(ValueError, match="src_len"):
    model.encode(p, src, np.array([6, 0, 1]))
  with pytest.raises(ValueError, match="src: the source is empty"):
    model.encode(p, np.zeros((B, 0), np.int32), np.zeros((B,), np.int32))
  with pytest.raises(ValueError, match="src: token ids"):
    model.encode(p, np.where(src == src[0, 0], VS, src), SRC_LEN)
  with pytest.raises(ValueError, match="tgt_in: token ids"):
    model.forward(p, src, SRC_LEN, tgt_in + VT)
  with pytest.raises(ValueError, match="attention"):
    Seq2Seq(VS, VT, attention="luong_concat")
  with pytest.raises(ValueError, match="query_size"):
    Seq2Seq(VS, VT, attention="luong_dot", encoder_sizes=(4,), decoder_sizes=(5,))


def test_impl_unroll_remat_and_param_dtype_reach_the_model():
  """The config's recurrence settings change how the model runs, never what it computes."""
  model, p = make_model("bahdanau", cell="gru")
  src, tgt_in = batch(4)
  tgt_out = np.concatenate([tgt_in[:, 1:], np.full((B, 1), EOS)], 1)
  tgt_len = np.array([5, 2, 4])

  def loss_and_grad(m, params):
    f = lambda q: -sequence_logprob(m.forward(q, src, SRC_LEN, tgt_in)[0], tgt_out, tgt_len).sum()
    return jax.jit(jax.value_and_grad(f))(params)

  want_loss, want_grad = loss_and_grad(model, p)
  for options in ({"impl": "scan", "unroll": 2}, {"remat": 2}):
    other = Seq2Seq(VS, VT, attention="bahdanau", **{**make_kw(cell="gru"), **options})
    loss, grad = loss_and_grad(other, p)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grad,
                 want_grad)
  half = Seq2Seq(VS, VT, attention="bahdanau", param_dtype=jnp.bfloat16, **make_kw(cell="gru"))
  assert half.init(jax.random.key(1))["encoder"][0]["fw"]["W_h"].dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="impl"):
    Seq2Seq(VS, VT, impl="fused")
  with pytest.raises(ValueError, match="remat"):
    Seq2Seq(VS, VT, remat=-1)


def test_the_seq2seq_config_reaches_impl_remat_unroll_and_param_dtype():
  from configs import reverse_digits
  from recurrent.tasks import _seq2seq
  config = reverse_digits.get_config()
  config.model.impl, config.model.remat, config.model.unroll = "scan", 3, 2
  config.model.param_dtype = "bfloat16"
  m = _seq2seq.build_model(config, 13, 13)
  assert (m.impl, m.remat, m.unroll, m.param_dtype) == ("scan", 3, 2, jnp.bfloat16)
  config.model.param_dtype = "float8"
  with pytest.raises(ValueError, match="model.param_dtype"):
    _seq2seq.build_model(config, 13, 13)
