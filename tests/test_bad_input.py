"""Bad config values and bad arguments fail naming the field or argument, before any compile (issue 18).

The config cases were found by experiments/probe_config.py (every leaf of each
config's :smoke set to -1 / 0 / NaN / "nope" / () ...); before the fixes each
one either ran silently (a negative ``train_bytes`` trained on all bytes but
one, ``model.unroll=0``, a ``num_samples`` of -1) or failed far away (a gather
error, "math domain error", an empty eval split). The argument cases come
from one pass over the public functions with wrong ranks, dtypes, sizes and
ranges. Each test only builds or traces: nothing here trains.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recurrent import attention, ctc, decoding, diagnostics, make_stack, nn as rnn, seq2seq


def _configured(module, arg, field, value):
  config = module.get_config(arg)
  node = config
  *parents, leaf = field.split(".")
  for p in parents:
    node = node[p]
  node[leaf] = value
  return config


def _tagging_splits():
  words = [["The", "cat", "sat"], ["A", "dog"]]
  tags = [["DET", "NOUN", "VERB"], ["DET", "NOUN"]]
  return {s: (words, tags) for s in ("train", "valid", "test")}


def _build_pos(config):
  from recurrent.tasks import pos_tagging
  return pos_tagging.make_task(config, _tagging_splits())


def _build_sentiment(config):
  from recurrent.tasks import sentiment
  return sentiment.prepare(config, [])


def _build_task(config):
  from recurrent.tasks import get_task
  return get_task(config)


def _config_module(name):
  import importlib
  return importlib.import_module(f"configs.{name}")


CONFIG_CASES = [
    # (config, field, bad value, build): the task's build reads the field
    ("copy_memory", "model.unroll", 0, _build_task),
    ("copy_memory", "model.remat", -1, _build_task),
    ("copy_memory", "task.delay", 0, _build_task),
    ("copy_memory", "task.embed_size", 0, _build_task),
    ("copy_memory", "task.num_eval_batches", 0, _build_task),
    ("first_token", "task.num_symbols", 0, _build_task),
    ("first_token", "task.num_eval_batches", -1, _build_task),
    ("adding", "task.delay", 1, _build_task),
    ("case_correction", "task.train_bytes", -1, _build_task),
    ("case_correction", "task.epochs", 0, _build_task),
    ("case_correction", "task.test_input", "nope", _build_task),
    ("case_correction", "task.test_target", "", _build_task),
    ("translation", "task.decode_batch_size", 0, _build_task),
    ("digits", "decode.beam_size", 0, _build_task),      # the CTC smoke leaves decode.* unused
    ("digits", "decode.alpha", float("nan"), _build_task),
    ("digits", "model.attention", "nope", _build_task),
    ("digits", "model.decoder_sizes", (), _build_task),
    ("digits", "task.beam_size", 0, _build_task),
    ("digits", "task.freq_masks", -1, _build_task),
    ("digits", "task.stack_frames", 0, _build_task),
    ("digits", "task.min_digits", 0, _build_task),
    ("digits", "task.max_seconds", float("nan"), _build_task),
    ("digits", "task.snr_max", -1.0, _build_task),
    ("digits", "task.num_test", 0, _build_task),
    ("trigger_word", "model.stride", 0, _build_task),
    ("trigger_word", "model.dropout", float("nan"), _build_task),
    ("trigger_word", "task.label_frames", 0, _build_task),
    ("trigger_word", "task.max_seconds", -1.0, _build_task),
    ("trigger_word", "task.min_trigger_gap_s", float("nan"), _build_task),
    ("trigger_word", "task.threshold", -1.0, _build_task),
    ("trigger_word", "task.snr_min", 1e9, _build_task),
    ("ptb", "model.init_scale", float("nan"), lambda c: __import__(
        "recurrent.tasks._lm", fromlist=["_"]).make_model(c.model, 10)),
    ("ptb", "task.epochs", 0, _build_task),
    ("pos", "model.embed_size", 0, _build_pos),
    ("pos", "model.embed_size", -1, _build_pos),
    ("pos", "task.num_samples", -1, _build_pos),
    ("ner", "task.num_samples", -1, _build_pos),
    ("sentiment", "task.num_samples", -1, _build_sentiment),
]


@pytest.mark.parametrize("name, field, value, build", CONFIG_CASES,
                         ids=[f"{c[0]}-{c[1]}={c[2]!r}" for c in CONFIG_CASES])
def test_config_field_fails_naming_it(name, field, value, build):
  config = _configured(_config_module(name), "smoke", field, value)
  if field == "task.test_target":   # the pair is checked: an empty target with an empty input
    config.task.test_input = ""
  with pytest.raises(ValueError, match=f"^([a-z_.]+, )?{re.escape(field)}[:,]"):
    build(config)


GRADIENT_LAB_CASES = [
    ("cells", ("lstm", "nope")), ("cells", ()), ("hidden_sizes", ()), ("hidden_sizes", (0,)),
    ("layer", 1), ("recurrent_max_sv", float("nan")), ("recurrent_max_sv", -1.0),
    ("clip_norms", (-1.0,)), ("optim.learning_rate", float("nan")), ("task.delay", 0),
    ("task.name", "nope"),
]


@pytest.mark.parametrize("field, value", GRADIENT_LAB_CASES)
def test_gradient_lab_field_fails_naming_it_before_the_workdir_is_written(field, value, tmp_path):
  """Before: an unknown cell failed when its arm came to train, after the other arms had."""
  from experiments import outputs
  config = _configured(_config_module("gradient_decay"), "smoke", field, value)
  with pytest.raises(ValueError, match=re.escape(field) + r"(\[\d+\])?:"):   # hidden_sizes[0]: ...
    outputs.run_gradient_lab(config, tmp_path / "run", log=lambda *_: None)
  assert not (tmp_path / "run" / "config.json").exists()


# --------------------------------------------------------------------------- public functions

B, T, V = 2, 5, 7
KEY = jax.random.key(0)
BOS = jnp.zeros((B,), jnp.int32)


def _step(tokens_B, carry):
  return jnp.zeros((tokens_B.shape[0], V)), carry


def _bad_step(tokens_B, carry):
  return jnp.zeros((tokens_B.shape[0], 1, V)), carry


_TOKENS = jnp.ones((B, 3), jnp.int32)
_LENS = jnp.array([3, 1])
_LOGITS = jnp.zeros((B, T, 4))
_FRAMES = jnp.array([5, 3])
_LABELS = jnp.array([[1, 2], [3, 0]])
_LABEL_LEN = jnp.array([2, 1])
_ATT = attention.Attention("bahdanau", 4, 4, 4)


def _attend(query, keys, mask):
  p = _ATT.init(KEY)
  return _ATT(p, query, keys, jnp.zeros(keys.shape[:2] + (4,)), mask)


def _s2s(**kw):
  return seq2seq.Seq2Seq(**{"src_vocab": 5, "tgt_vocab": 6, "embed_size": 4, "encoder_sizes": (4,),
                            "decoder_sizes": (4,), "attn_size": 4, "output_size": 4, **kw})


API_CASES = [
    # (what, call, the argument named in the message)
    ("greedy bos float", lambda: decoding.greedy(_step, (), jnp.array([0.5, 1.0]), 3), "bos"),
    ("greedy pad -1", lambda: decoding.greedy(_step, (), BOS, 3, pad=-1), "pad"),
    ("greedy eos >= V", lambda: decoding.greedy(_step, (), BOS, 3, eos=V), "eos"),
    ("greedy logits rank 3", lambda: decoding.greedy(_bad_step, (), BOS, 3), "step_fn"),
    ("sample temperature inf", lambda: decoding.sample(_step, (), KEY, BOS, 3,
                                                        temperature=float("inf")), "temperature"),
    ("sample rng int", lambda: decoding.sample(_step, (), 0, BOS, 3), "rng"),
    ("beam alpha nan", lambda: decoding.beam_search(_step, (), BOS, 2, 3, eos=1,
                                                    length_penalty_kind="wu",
                                                    alpha=float("nan")), "alpha"),
    ("beam eos >= V", lambda: decoding.beam_search(_step, (), BOS, 2, 3, eos=V), "eos"),
    ("beam pad -1", lambda: decoding.beam_search(_step, (), BOS, 2, 3, eos=1, pad=-1), "pad"),
    ("score tokens float", lambda: decoding.score(_step, (), BOS, _TOKENS * 1.0, _LENS),
     "tokens_BT"),
    ("score lengths > T", lambda: decoding.score(_step, (), BOS, _TOKENS, jnp.array([4, 1])),
     "lengths_B"),
    ("score lengths < 0", lambda: decoding.score(_step, (), BOS, _TOKENS, jnp.array([-1, 1])),
     "lengths_B"),
    ("score bos of another B", lambda: decoding.score(_step, (), jnp.zeros(3, jnp.int32), _TOKENS,
                                                      _LENS), "bos"),
    ("score token >= V", lambda: decoding.score(_step, (), BOS, _TOKENS * V, _LENS), "tokens_BT"),
    ("ctc_loss logits rank 2", lambda: ctc.ctc_loss(_LOGITS[..., 0], _FRAMES, _LABELS, _LABEL_LEN),
     "logits_BTV"),
    ("ctc_loss lengths > T", lambda: ctc.ctc_loss(_LOGITS, jnp.array([9, 3]), _LABELS, _LABEL_LEN),
     "lengths_B"),
    ("ctc_loss label_len > L", lambda: ctc.ctc_loss(_LOGITS, _FRAMES, _LABELS, jnp.array([3, 1])),
     "label_len_B"),
    ("ctc_loss label >= V", lambda: ctc.ctc_loss(_LOGITS, _FRAMES, _LABELS * 4, _LABEL_LEN),
     "labels_BL"),
    ("ctc_loss blank as a label", lambda: ctc.ctc_loss(_LOGITS, _FRAMES, _LABELS * 0, _LABEL_LEN),
     "labels_BL"),
    ("ctc_loss labels float", lambda: ctc.ctc_loss(_LOGITS, _FRAMES, _LABELS * 1.0, _LABEL_LEN),
     "labels_BL"),
    ("best_path lengths < 0", lambda: ctc.best_path(_LOGITS, jnp.array([-1, 3])), "lengths_B"),
    ("prefix_beam_search beam 0", lambda: ctc.prefix_beam_search(_LOGITS, _FRAMES, 0),
     "beam_size"),
    ("prefix_beam_search max_len -1", lambda: ctc.prefix_beam_search(_LOGITS, _FRAMES, 2, -1),
     "max_len"),
    ("collapse rank 1", lambda: ctc.collapse(jnp.zeros(5, jnp.int32), _FRAMES), "path_BT"),
    ("error_rates lengths", lambda: ctc.error_rates([[1]], [[1], [2]]), "refs, hyps"),
    ("attention query size", lambda: _attend(jnp.ones((B, 3)), jnp.ones((B, T, 4)),
                                             jnp.ones((B, T), bool)), "query_BQ"),
    ("attention mask shape", lambda: _attend(jnp.ones((B, 4)), jnp.ones((B, T, 4)),
                                             jnp.ones((B, T + 1), bool)), "mask_BS"),
    ("attention keys size", lambda: _ATT.precompute(_ATT.init(KEY), jnp.ones((B, T, 3))),
     "keys_BSE"),
    ("seq2seq decoder_sizes ()", lambda: _s2s(decoder_sizes=()), "decoder_sizes"),
    ("seq2seq encoder_sizes 4", lambda: _s2s(encoder_sizes=4), "encoder_sizes"),
    ("seq2seq decoder_sizes (0,)", lambda: _s2s(decoder_sizes=(0,)), r"decoder_sizes\[0\]"),
    ("seq2seq src_features -1", lambda: _s2s(src_features=-1), "src_features"),
    ("seq2seq tgt_in of another B", lambda: _s2s().forward(   # fails before it reads the params
        None, jnp.ones((B, 3), jnp.int32), _LENS, jnp.ones((B + 1, 4), jnp.int32)), "tgt_in"),
    ("nn.RNN unroll 0", lambda: rnn.RNN(hidden_sizes=(4,), unroll=0).init(KEY, jnp.ones((B, T, 3))),
     "unroll"),
    ("diagnostics by_distance target", lambda: diagnostics.by_distance(jnp.ones((B, T)), T),
     "target"),
    ("diagnostics by_distance rank", lambda: diagnostics.by_distance(jnp.ones((T,))), "norms_BT"),
    ("diagnostics zero_deltas num_steps", lambda: diagnostics.zero_deltas(
        make_stack("lstm", 3, (4,)), B, -1), "num_steps"),
]


@pytest.mark.parametrize("call, name", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_argument_fails_naming_it(call, name):
  with pytest.raises(ValueError, match=f"^{name}"):
    call()


def test_jacobian_target_out_of_range_fails_naming_it():
  """Before: s_BTH[:, target] clamped an out-of-range target to the last step, silently."""
  model = rnn.RNN(cell="rnn", hidden_sizes=(4,))
  x = jnp.ones((B, T, 3))
  variables = model.init(KEY, x)
  with pytest.raises(ValueError, match="^target: must be an integer in"):
    diagnostics.jacobian_norms(model, variables, (x,), target=T)
  with pytest.raises(ValueError, match="^layer: must be an integer in"):
    diagnostics.hidden_gradients(model, variables, (x,), lambda out: out[1].sum(), layer=1)


def test_checked_arguments_still_trace_under_jit():
  """The new checks read values only when they are concrete: traced lengths, alpha and tokens pass."""
  @jax.jit
  def run(lengths, alpha, tokens):
    lp = decoding.score(_step, (), BOS, tokens, lengths)
    beam = decoding.beam_search(_step, (), BOS, 2, 3, eos=1, length_penalty_kind="wu", alpha=alpha)
    nll, _, _ = ctc.ctc_loss(_LOGITS, _FRAMES, _LABELS, lengths)
    return lp, beam.scores, nll
  lp, scores, nll = run(jnp.array([2, 1]), 0.6, _TOKENS)
  np.testing.assert_allclose(lp, -np.log(V) * np.array([2, 1]), rtol=1e-6)
  assert scores.shape == (B, 2) and nll.shape == (B,)


def test_nn_rnn_takes_one_hidden_size_as_an_int():
  """``hidden_sizes=4`` (one layer) was a TypeError in nn.RNN while make_stack took it."""
  x = jnp.ones((B, T, 3))
  a = rnn.RNN(hidden_sizes=4).init(KEY, x)
  b = rnn.RNN(hidden_sizes=(4,)).init(KEY, x)
  assert jax.tree.map(jnp.shape, a) == jax.tree.map(jnp.shape, b)


def test_cell_dtype_nnx_batch_and_converter_arguments_are_named():
  """The gaps the argument pass found in modules it did not own: each fails naming the argument."""
  import jax.numpy as jnp
  from recurrent import convert, make_cell
  from recurrent.nnx import RNN as NNXRNN
  for bad in ("nope", jnp.int32):
    with pytest.raises(ValueError, match="param_dtype"):
      make_cell("lstm", 3, 4, param_dtype=bad)
  assert make_cell("gru", 3, 4, param_dtype=jnp.bfloat16).param_dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="stack: expected a recurrent.layers.Stack"):
    convert.to_torch(make_cell("lstm", 3, 4), [{}])
  import flax.nnx as nnx
  rnn = NNXRNN(3, (4,), "gru", rngs=nnx.Rngs(0))
  assert jax.tree.leaves(rnn.initial_carries(2))[0].shape == (2, 4)
  with pytest.raises(ValueError, match="batch_size"):
    rnn.initial_carries(-1)
