"""Trigger-word detection (the seed's course): one FSDD digit is the trigger, the other nine are negatives.

Each example is a clip of 5-10 s of background noise with inserted
non-overlapping words (``recurrent.data.speech.trigger_clip``); the target of
output frame u is 1 for the ``label_frames`` frames after a positive word
ends (the first output frame that has heard its end, and the ones after) and
0 elsewhere. The model (``recurrent.speech.TriggerModel``) is causal: a
strided convolution over log-mel frames, a unidirectional GRU and a sigmoid,
trained with binary cross-entropy over the valid frames of each clip.

A batch: ``audio`` [B, N] (8 kHz, padded to ``max_seconds``), ``audio_len``
[B], ``target`` [B, U] (U = N / (hop x stride)). The test set holds
``num_test`` clips built from the held-out takes (0-4) over the held-out
part of the noise, and ``num_background`` clips of pure background of
``max_seconds`` each. ``report`` scores detections at the event level
(``recurrent.events``): precision, recall, F1 on the test clips, false
alarms per minute on the pure background, latency; at the last step it
returns ``trigger_report.json``, ``trigger_word.png`` and checks that
streaming chunk by chunk gives the offline outputs.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from recurrent import events
from recurrent.checks import check_int
from recurrent.data import audio
from recurrent.data import speech as data_lib
from recurrent.layers import time_mask
from recurrent.speech import TriggerModel
from recurrent.models import stack_kwargs
from recurrent.tasks.base import Figure, Report, Task

TEST_SEED = 2_000_003
NORM_SEED = 3_000_017


def make_examples(rng: np.random.Generator, corpus, pool, noises, n: int, t, model: TriggerModel,
                  words: bool = True) -> dict:
  max_samples = int(t.max_seconds * data_lib.RATE)
  spo = model.samples_per_output
  U = max_samples // spo
  waves, target = [], np.zeros((n, U), np.float32)
  ends = []
  for i in range(n):
    w, pos, neg = data_lib.trigger_clip(rng, corpus, pool, noises, t.trigger,
                                        (t.min_seconds, t.max_seconds), t.max_positives,
                                        t.max_negatives, (t.snr_min, t.snr_max), words,
                                        t.min_trigger_gap_s)
    waves.append(w)
    ends.append(pos)
    for e in pos:
      u0 = -(-e // spo) - 1  # the first output frame whose input reaches the word's end
      target[i, u0:u0 + t.label_frames] = 1.0
  x, x_len = data_lib.pad_batch(waves, max_samples)
  return {"audio": x, "audio_len": x_len, "target": target}, ends


@functools.lru_cache(maxsize=2)
def _norm(data_dir: str, t_key: tuple, model_key: TriggerModel) -> tuple:
  """Per-band mean and std of the log-mel frames of a few training clips (fixed, for causality)."""
  # Drawn without the trigger spacing (it barely moves the statistics; the model of the README's
  # run was trained with these exact values).
  t = _Fields({**dict(t_key), "min_trigger_gap_s": 0.0})
  corpus = data_lib.load_corpus(data_dir)
  train, _ = data_lib.split_indices(corpus, "usual")
  batch, _ = make_examples(np.random.default_rng(NORM_SEED), corpus, train, corpus.noise_train,
                           32, t, model_key)
  x = np.asarray(audio.log_mel(batch["audio"], data_lib.RATE, model_key.n_mels))
  valid = np.arange(x.shape[1])[None, :] < (batch["audio_len"] // model_key.hop)[:, None]
  frames = x[valid]
  return (tuple(float(v) for v in frames.mean(0)), tuple(float(v) for v in frames.std(0) + 1e-3))


class _Fields(dict):
  __getattr__ = dict.__getitem__


_DATA_KEYS = ("trigger", "min_seconds", "max_seconds", "max_positives", "max_negatives",
              "snr_min", "snr_max", "label_frames", "min_trigger_gap_s")


def figure(spec_TM: np.ndarray, target_U: np.ndarray, prob_U: np.ndarray, frame_s: float,
           dets: list, ends: list, threshold: float) -> Figure:
  """The clip's log-mel spectrogram (trigger ends marked) over the output per frame, the target,
  the threshold and the detections."""
  return Figure("spectrogram_track", {
      "spec_TM": spec_TM, "track_t": (np.arange(len(prob_U)) + 1) * frame_s,
      "curves": [{"y": prob_U, "color": "C0", "lw": 1.2, "label": "model output"}],
      "fill": {"y": target_U, "label": "target"}, "hline": threshold,
      "spec_marks_s": list(ends), "track_marks_s": list(dets), "ylim": (-0.02, 1.05),
      "spec_title": "log-mel spectrogram (cyan: end of a trigger word)",
      "track_title": "output per frame (red dashes: detections)", "track_ylabel": "p(trigger)",
      "figsize": (11, 5)})


def check_fields(t, m) -> None:
  """Fails naming the field on a ``task.*`` or ``model.*`` value, before the data are read."""
  for field, least in (("label_frames", 1), ("n_mels", 1), ("num_test", 1), ("num_background", 0),
                       ("max_positives", 0), ("max_negatives", 0)):
    check_int(f"task.{field}", t[field], least)
  for field in ("kernel", "stride", "channels"):
    check_int(f"model.{field}", m[field])
  for field in ("min_seconds", "max_seconds"):
    if not 0 < t[field] < float("inf"):
      raise ValueError(f"task.{field}: must be finite and > 0, got {t[field]!r}")
  if t.min_seconds > t.max_seconds:
    raise ValueError(f"task.min_seconds: must be <= task.max_seconds={t.max_seconds}, got "
                     f"{t.min_seconds}")
  for field in ("merge_gap_s", "min_trigger_gap_s", "tolerance_s"):
    if not 0 <= t[field] < float("inf"):
      raise ValueError(f"task.{field}: must be finite and >= 0, got {t[field]!r}")
  if not (-float("inf") < t.snr_min <= t.snr_max < float("inf")):
    raise ValueError(f"task.snr_min, task.snr_max: must be finite with snr_min <= snr_max, got "
                     f"{t.snr_min!r}, {t.snr_max!r}")
  if not 0 < t.threshold < 1:
    raise ValueError(f"task.threshold: must be a probability in (0, 1), got {t.threshold!r}")
  if not 0 <= m.dropout < 1:
    raise ValueError(f"model.dropout: must be in [0, 1), got {m.dropout!r}")


def build(config) -> Task:
  t, m = config.task, config.model
  check_fields(t, m)
  if not 0 <= t.trigger <= 9:
    raise ValueError(f"task.trigger: must be a digit 0-9, got {t.trigger!r}")
  if len(m.hidden_sizes) != 1:
    raise ValueError(f"model.hidden_sizes: the trigger-word model has one recurrent layer, got "
                     f"{tuple(m.hidden_sizes)}")
  corpus = data_lib.load_corpus(t.data_dir)  # every file read and checked now
  train_idx, test_idx = data_lib.split_indices(corpus, "usual")
  t_key = tuple((k, t[k]) for k in _DATA_KEYS)
  base = TriggerModel(rate=data_lib.RATE, n_mels=t.n_mels, kernel=m.kernel, stride=m.stride,
                      channels=m.channels, hidden=m.hidden_sizes[0], cell=m.cell,
                      dropout=m.dropout, **stack_kwargs(m, "unroll", "impl", "remat"))
  model = dataclasses.replace(base, norm=_norm(t.data_dir, t_key, base))
  B = config.batch_size
  frame_s = model.samples_per_output / data_lib.RATE
  test, test_ends = make_examples(np.random.default_rng(TEST_SEED), corpus, test_idx,
                                  corpus.noise_test, t.num_test, t, model)
  bg, _ = make_examples(np.random.default_rng(TEST_SEED + 1), corpus, test_idx, corpus.noise_test,
                        t.num_background, _Fields({**dict(t_key), "min_seconds": t.max_seconds}),
                        model, words=False)

  def train_batch(step):
    batch, _ = make_examples(np.random.default_rng([config.seed, step]), corpus, train_idx,
                             corpus.noise_train, B, t, model)
    return batch

  def batches(data):
    n = len(data["audio"])
    for i in range(0, n, B):
      b = {k: v[i:i + B] for k, v in data.items()}
      if len(b["audio"]) < B:
        b = {k: np.concatenate([v, np.zeros((B - len(v),) + v.shape[1:], v.dtype)])
             for k, v in b.items()}
      yield b

  def loss_fn(params, batch, rng):
    logits = model.logits(params, batch["audio"], batch["audio_len"], rng)
    U = logits.shape[1]
    mask = time_mask(model.num_outputs(batch["audio_len"]), U)
    bce = optax.sigmoid_binary_cross_entropy(logits, batch["target"])
    n = mask.sum()
    total = jnp.where(mask, bce, 0.0).sum()
    correct = jnp.where(mask, (logits > 0) == (batch["target"] > 0.5), False).sum()
    return total / jnp.maximum(n, 1), {"loss": (total, n), "frame_accuracy": (correct, n)}

  @jax.jit
  def probs(params, audio_BN, audio_len_B):
    return jax.nn.sigmoid(model.logits(params, audio_BN, audio_len_B))

  def predict(params, data):
    out = [np.asarray(probs(params, b["audio"], b["audio_len"])) for b in batches(data)]
    p = np.concatenate(out)[:len(data["audio"])]
    return [p[i, :model.num_outputs(int(L))] for i, L in enumerate(data["audio_len"])]

  merge_gap = int(round(t.merge_gap_s / frame_s))
  window = t.label_frames * frame_s

  def detect(prob_list):
    return [events.detections(p, t.threshold, merge_gap, frame_s) for p in prob_list]

  def report(params, step):
    p_test = predict(params, test)
    d_test = detect(p_test)
    ends_s = [[e / data_lib.RATE for e in ends] for ends in test_ends]
    seconds = float(test["audio_len"].sum()) / data_lib.RATE
    s = events.score(ends_s, d_test, seconds, window, t.tolerance_s)
    d_bg = detect(predict(params, bg))
    bg_minutes = float(bg["audio_len"].sum()) / data_lib.RATE / 60
    fa = sum(len(d) for d in d_bg) / bg_minutes
    out = {"f1": s["f1"], "precision": s["precision"], "recall": s["recall"],
           "false_alarms_per_min_background": fa}
    if s["events"] and np.isfinite(s["latency_median_s"]):  # NaN when nothing was matched
      out["latency_median_s"] = s["latency_median_s"]
    print(f"step {step}: trigger F1 {s['f1']:.4f} (precision {s['precision']:.4f}, recall "
          f"{s['recall']:.4f}, {s['events']} events); {fa:.3f} false alarms/min on "
          f"{bg_minutes:.1f} min of background; median latency {s['latency_median_s']:.3f} s")
    rep = Report(scalars=out)
    if step >= config.num_steps:
      i = int(np.argmax([len(e) for e in test_ends[:20]]))
      # Streaming: the clip in chunks of 0.1 s through the carried state, against the offline run.
      L = int(test["audio_len"][i]) // model.samples_per_output * model.samples_per_output
      chunk = 5 * model.samples_per_output
      state = model.stream_init(1)
      step_fn = jax.jit(model.stream_step)
      outs = []
      x = jnp.asarray(test["audio"][i:i + 1, :L])
      for a in range(0, L - L % chunk, chunk):
        state, o = step_fn(params, state, x[:, a:a + chunk])
        outs.append(np.asarray(o))
      streamed = jax.nn.sigmoid(np.concatenate(outs, 1))[0]
      stream_diff = float(np.abs(streamed - p_test[i][:len(streamed)]).max())
      summary = {"step": step, "trigger_digit": t.trigger, "test_clips": t.num_test,
                 "test_seconds": seconds, "background_minutes": bg_minutes, **s,
                 "false_alarms_per_min_background": fa,
                 "streaming_max_abs_diff": stream_diff}
      rep.json["trigger_report.json"] = summary
      print(f"streaming (chunks of {chunk} samples) vs offline: max |diff| {stream_diff:.2e}")
      spec = np.asarray(audio.log_mel(test["audio"][i:i + 1, :L], data_lib.RATE, t.n_mels))[0]
      rep.figures["trigger_word.png"] = figure(spec, test["target"][i, :len(p_test[i])], p_test[i],
                                               frame_s, d_test[i], ends_s[i], t.threshold)
    return rep

  return Task(init_params=model.init, loss_fn=loss_fn, train_batch=train_batch,
              eval_batches=lambda: batches(test),
              num_tokens=lambda b: int(model.num_outputs(b["audio_len"]).sum()),
              eval_metric="f1", eval_mode="max", report=report)
