"""Connected spoken digits (FSDD over background noise): CTC or an attention encoder-decoder.

The two ways the seed gives to recognise speech with RNNs, on the same data:
``task.method = "ctc"`` (``recurrent.speech.CTCModel`` trained with
``recurrent.ctc.ctc_loss``; decoded by best path and by prefix beam search)
or ``"attention"`` (``recurrent.seq2seq.Seq2Seq`` over the frames, greedy and
beam decoding). Data: ``recurrent.data.speech`` (1-7 digits per utterance,
random gaps, noise at a random SNR); ``task.split`` 'usual' (FSDD takes 0-4
held out) or 'speaker=NAME' (a whole speaker held out). Training batches are
a pure function of (seed, step); the test set is ``task.num_test`` fixed
utterances from the held-out clips over the held-out part of the noise.

A batch: ``audio`` [B, N] (8 kHz, zero-padded), ``audio_len`` [B],
``labels`` [B, L] (digit + 1; 0 is the CTC blank) and ``label_len`` [B];
for attention also ``tgt_in``/``tgt_out`` (digit + 3 after PAD, BOS, EOS),
``tgt_len`` and ``teacher_forcing``. Features are computed inside the jitted
step (``speech.Frontend``). ``report`` decodes the test set and returns the
digit error rate (edit distance / reference digits) and the utterance
accuracy; at the last step it also returns ``digits_report.json``,
``samples.txt`` and the figures ``ctc_posteriors.png`` or
``attention_alignment.png``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from recurrent import ctc
from recurrent.checks import check_int
from recurrent.data import audio
from recurrent.data import speech as data_lib
from recurrent.seq2seq import BOS, EOS
from recurrent.speech import CTCModel, Frontend
from recurrent.tasks import _seq2seq
from recurrent.models import stack_kwargs
from recurrent.tasks.base import Figure, Report, Task

METHODS = ("ctc", "attention")
TEST_SEED = 1_000_003  # the test utterances do not depend on the training seed
NUM_SAMPLES = 10


def frontend(config) -> Frontend:
  t = config.task
  for field, least in (("n_mels", 1), ("stack_frames", 1), ("time_masks", 0), ("max_time_mask", 0),
                       ("freq_masks", 0), ("max_freq_mask", 0)):
    check_int(f"task.{field}", t[field], least)
  return Frontend(rate=data_lib.RATE, n_mels=t.n_mels, stack=t.stack_frames,
                  time_masks=t.time_masks, max_time=t.max_time_mask, freq_masks=t.freq_masks,
                  max_freq=t.max_freq_mask)


def make_examples(rng: np.random.Generator, corpus, pool, noises, n: int, t) -> dict:
  """``n`` utterances as a batch dict of NumPy arrays (the CTC and the seq2seq fields)."""
  max_samples = int(t.max_seconds * data_lib.RATE)
  waves, digit_lists = [], []
  for _ in range(n):
    w, d = data_lib.connected_digits(rng, corpus, pool, noises, max_samples, t.min_digits,
                                     t.max_digits, t.max_gap_s, (t.snr_min, t.snr_max))
    waves.append(w)
    digit_lists.append(d)
  x, x_len = data_lib.pad_batch(waves, max_samples)
  L = t.max_digits
  labels = np.zeros((n, L), np.int32)
  tgt_in = np.zeros((n, L + 1), np.int32)
  tgt_out = np.zeros((n, L + 1), np.int32)
  for i, d in enumerate(digit_lists):
    labels[i, :len(d)] = np.array(d) + 1
    tgt_in[i, 0] = BOS
    tgt_in[i, 1:len(d) + 1] = np.array(d) + 3
    tgt_out[i, :len(d)] = np.array(d) + 3
    tgt_out[i, len(d)] = EOS
  lens = np.array([len(d) for d in digit_lists], np.int32)
  return {"audio": x, "audio_len": x_len, "labels": labels, "label_len": lens,
          "tgt_in": tgt_in, "tgt_out": tgt_out, "tgt_len": lens + 1}


def pad_rows(batch: dict, B: int) -> dict:
  """Fills a short batch to B rows of zeros (length 0: they count for nothing)."""
  m = len(batch["audio"])
  return {k: np.concatenate([v, np.zeros((B - m,) + v.shape[1:], v.dtype)]) if m < B else v
          for k, v in batch.items()}


@functools.lru_cache(maxsize=4)
def test_set(data_dir: str, split: str, n: int, t_key: tuple) -> dict:
  t = dict(t_key)
  corpus = data_lib.load_corpus(data_dir)
  _, test = data_lib.split_indices(corpus, split)
  return make_examples(np.random.default_rng(TEST_SEED), corpus, test, corpus.noise_test, n,
                       _Fields(t))


class _Fields(dict):
  __getattr__ = dict.__getitem__


def _data_fields(t) -> tuple:
  keys = ("max_seconds", "min_digits", "max_digits", "max_gap_s", "snr_min", "snr_max")
  return tuple((k, t[k]) for k in keys)


def ctc_figure(feats_TM: np.ndarray, probs_UV: np.ndarray, stack: int, ref: list, hyp: list
               ) -> Figure:
  """The log-mel features over the CTC posteriors per output frame (blank grey), with the best
  path's digits written where they start."""
  t = (np.arange(probs_UV.shape[0]) + 0.5) * stack / 100
  curves = [{"y": probs_UV[:, 0], "color": "0.7", "lw": 1, "label": "blank"}]
  curves += [{"y": probs_UV[:, v], "lw": 1.2} for v in range(1, probs_UV.shape[1])]
  texts, prev = [], 0
  for u, c in enumerate(probs_UV.argmax(-1)):
    if c != 0 and c != prev:
      texts.append((float(t[u]), 1.03, str(c - 1)))
    prev = c
  return Figure("spectrogram_track", {
      "spec_TM": feats_TM, "track_t": t, "curves": curves, "texts": texts, "ylim": (0, 1.12),
      "spec_title": f"reference {''.join(map(str, ref))}   best path {''.join(map(str, hyp))}",
      "track_ylabel": "CTC posterior", "figsize": (10, 5.5)})


def alignment_figure(weights_TS: np.ndarray, hyp: list, stack: int, ref: list) -> Figure:
  """The attention of each output (rows) over the frames, on a time axis in seconds."""
  return Figure("heatmap", {
      "weights": weights_TS, "y_labels": hyp, "seconds": weights_TS.shape[1] * stack / 100,
      "xlabel": "time (s)", "ylabel": "output", "title_size": 10,
      "title": f"attention over frames; reference {''.join(map(str, ref))}"})


def _error_scalars(step: int, refs: list, hyp_greedy: list, hyp_beam: list, greedy: str,
                   beam: str) -> dict:
  """Digit error rate and utterance accuracy of both decoders' hypotheses (and a log line)."""
  rg, rb = ctc.error_rates(refs, hyp_greedy), ctc.error_rates(refs, hyp_beam)
  out = {"digit_error_rate": rg["error_rate"], "utterance_accuracy": rg["utterance_accuracy"],
         "digit_error_rate_beam": rb["error_rate"], "utterance_accuracy_beam": rb["utterance_accuracy"]}
  print(f"step {step}: digit error rate {out['digit_error_rate']:.4f} ({greedy}), "
        f"{out['digit_error_rate_beam']:.4f} ({beam}); utterance accuracy "
        f"{out['utterance_accuracy']:.4f}")
  return out


def check_data_fields(t) -> None:
  """Fails naming the field on a ``task.*`` value of the utterances, before the data are read."""
  for field in ("min_digits", "max_digits", "num_test"):
    check_int(f"task.{field}", t[field])
  if t.min_digits > t.max_digits:
    raise ValueError(f"task.min_digits: must be <= task.max_digits={t.max_digits}, got {t.min_digits}")
  if not 0 < t.max_seconds < float("inf"):
    raise ValueError(f"task.max_seconds: must be finite and > 0, got {t.max_seconds!r}")
  if not 0 <= t.max_gap_s < float("inf"):
    raise ValueError(f"task.max_gap_s: must be finite and >= 0, got {t.max_gap_s!r}")
  if not (-float("inf") < t.snr_min <= t.snr_max < float("inf")):
    raise ValueError(f"task.snr_min, task.snr_max: must be finite with snr_min <= snr_max, got "
                     f"{t.snr_min!r}, {t.snr_max!r}")


def build(config) -> Task:
  t = config.task
  if t.method not in METHODS:
    raise ValueError(f"task.method: must be one of {METHODS}, got {t.method!r}")
  _seq2seq.check_decoder_fields(config.model)   # read by the attention method only
  check_int("task.beam_size", t.beam_size)
  _seq2seq.check_decode_config(config.decode)
  check_data_fields(t)
  fe = frontend(config)
  corpus = data_lib.load_corpus(t.data_dir)  # every file read and checked now
  train_idx, _ = data_lib.split_indices(corpus, t.split)
  test = test_set(t.data_dir, t.split, t.num_test, _data_fields(t))
  B = config.batch_size
  # Feasibility of the test labels is checked once, now; training rows are masked and counted.
  hop = audio.frame_params(data_lib.RATE)[1]
  ctc.check_feasible(-(-(test["audio_len"] // hop) // t.stack_frames), test["labels"],
                     test["label_len"], "test set")
  m = config.model

  def train_batch(step):
    rng = np.random.default_rng([config.seed, step])
    batch = make_examples(rng, corpus, train_idx, corpus.noise_train, B, t)
    batch["teacher_forcing"] = _seq2seq.teacher_forcing_ratio(config, step)
    return batch

  def eval_batches():
    n = len(test["audio"])
    for i in range(0, n, B):
      batch = pad_rows({k: v[i:i + B] for k, v in test.items()}, B)
      batch["teacher_forcing"] = np.float32(1.0)
      yield batch

  def split_rng(rng):
    return (None, None) if rng is None else jax.random.split(rng)

  @jax.jit
  def features(audio_BN, audio_len_B):
    return fe(audio_BN, audio_len_B)

  def all_features():
    xs, ls = zip(*[jax.device_get(features(b["audio"], b["audio_len"])) for b in eval_batches()])
    n = len(test["audio"])
    return np.concatenate(xs)[:n], np.concatenate(ls)[:n]

  refs = [list(test["labels"][i, :test["label_len"][i]] - 1) for i in range(len(test["audio"]))]

  if t.method == "ctc":
    model = CTCModel(fe.size, 11, m.cell, tuple(m.hidden_sizes), **stack_kwargs(m))

    def loss_fn(params, batch, rng):
      k_fe, k_model = split_rng(rng)
      x, n = fe(batch["audio"], batch["audio_len"], k_fe)
      logits = model.logits(params, x, n, k_model)
      nll, feasible, counted = ctc.ctc_loss(logits, n, batch["labels"], batch["label_len"])
      c = counted.sum()
      real = batch["audio_len"] > 0
      return nll.sum() / jnp.maximum(c, 1), {
          "loss": (nll.sum(), c),
          "ctc_infeasible": ((real & ~feasible).sum(), real.sum())}

    @jax.jit
    def decode(params, x, n):
      logits = model.logits(params, x, n)
      g, g_len = ctc.best_path(logits, n)
      b, b_len, _ = ctc.prefix_beam_search(logits, n, t.beam_size, t.max_digits + 2)
      return g, g_len, b[:, 0], b_len[:, 0], jax.nn.softmax(logits, -1)

    def report(params, step):
      x, n = all_features()
      outs = []
      for i in range(0, len(x), B):
        xb, nb = x[i:i + B], n[i:i + B]
        m_ = len(xb)
        if m_ < B:
          xb = np.concatenate([xb, np.repeat(xb[:1], B - m_, 0)])
          nb = np.concatenate([nb, np.repeat(nb[:1], B - m_, 0)])
        outs.append([np.asarray(o)[:m_] for o in decode(params, xb, nb)])
      g, g_len, b, b_len, probs = (np.concatenate(o) for o in zip(*outs))
      hyp_g = [list(g[i, :g_len[i]] - 1) for i in range(len(g))]
      hyp_b = [list(b[i, :b_len[i]] - 1) for i in range(len(b))]
      out = _error_scalars(step, refs, hyp_g, hyp_b, "best path", f"prefix beam {t.beam_size}")
      rep = Report(scalars=out)
      if step >= config.num_steps:
        _final(rep, step, out, hyp_g)
        i = int(np.argmax([len(r) for r in refs[:50]]))  # a long utterance among the first 50
        frames = test["audio_len"][i:i + 1] // audio.frame_params(data_lib.RATE)[1]
        spec = audio.normalise(audio.log_mel(test["audio"][i:i + 1], data_lib.RATE, t.n_mels),
                               jnp.asarray(frames))
        spec = np.asarray(spec)[0, :frames[0]]
        rep.figures["ctc_posteriors.png"] = ctc_figure(spec, probs[i, :n[i]], t.stack_frames,
                                                       refs[i], hyp_g[i])
      return rep

    init = model.init

  else:
    model = _seq2seq.build_model(config, 1, 13, src_features=fe.size)
    decoder = _seq2seq.Decoder(model, config.decode, B)
    seq_loss = _seq2seq.make_loss_fn(model)

    def loss_fn(params, batch, rng):
      k_fe, k_model = split_rng(rng)
      x, n = fe(batch["audio"], batch["audio_len"], k_fe)
      inner = {"src": x, "src_len": n, "tgt_in": batch["tgt_in"], "tgt_out": batch["tgt_out"],
               "tgt_len": batch["tgt_len"], "teacher_forcing": batch["teacher_forcing"]}
      return seq_loss(params, inner, k_model)

    def digits_of(tokens, length):
      """The digits before EOS (a row cut at max_len has none)."""
      out = []
      for v in tokens[:int(length)]:
        if v == EOS:
          break
        if v >= 3:
          out.append(int(v) - 3)
      return out

    def report(params, step):
      x, n = all_features()
      n = np.maximum(n, 1)
      g = decoder.greedy(params, x, n)
      hyp_g = [digits_of(g.tokens[i], g.lengths[i]) for i in range(len(x))]
      bm = decoder.beam(params, x, n)
      hyp_b = [digits_of(bm.tokens[i, 0], bm.lengths[i, 0]) for i in range(len(x))]
      out = _error_scalars(step, refs, hyp_g, hyp_b, "greedy", f"beam {config.decode.beam_size}")
      rep = Report(scalars=out)
      if step >= config.num_steps:
        _final(rep, step, out, hyp_g)
        i = int(np.argmax([len(r) for r in refs[:50]]))
        tok = np.asarray(g.tokens[i:i + 1])
        _, w = decoder.score(params, x[i:i + 1], n[i:i + 1], tok, np.asarray(g.lengths[i:i + 1]))
        labels = [str(d) for d in hyp_g[i]] + ["<eos>"]
        rep.figures["attention_alignment.png"] = alignment_figure(
            np.asarray(w)[0, :len(labels), :n[i]], labels, t.stack_frames, refs[i])
      return rep

    init = model.init

  def _final(rep, step, out, hyps):
    """The summary and the sample transcripts of the last step, into the report ``rep``."""
    summary = {"step": step, "method": t.method, "split": t.split, "test_utterances": len(refs),
               "test_digits": int(sum(len(r) for r in refs)), **out}
    rep.json["digits_report.json"] = summary
    lines = [f"ref {''.join(map(str, r)):8s}  hyp {''.join(map(str, h))}"
             for r, h in list(zip(refs, hyps))[:NUM_SAMPLES]]
    rep.texts["samples.txt"] = "\n".join(lines) + "\n"
    print("\n".join(lines))

  return Task(init_params=init, loss_fn=loss_fn, train_batch=train_batch,
              eval_batches=eval_batches,
              num_tokens=lambda b: int((b["audio_len"] // hop).sum()),
              eval_metric="digit_error_rate", eval_mode="min", report=report)
