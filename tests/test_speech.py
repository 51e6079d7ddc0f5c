"""Spoken-digit data, the speech models (streaming = offline, causality), event scoring, and the
digits / trigger_word tasks trained a few steps through the harness on synthesised WAV files."""

import json
import wave

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import digits as digits_config
from configs import trigger_word as trigger_config
from recurrent import events
from recurrent.data import speech
from recurrent.seq2seq import Seq2Seq
from recurrent.speech import TriggerModel
from recurrent.training import loop

SPEAKERS = ("george", "theo")


def _write(path, x, rate):
  with wave.open(str(path), "wb") as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(rate)
    f.writeframes(np.clip(x * 32767, -32768, 32767).astype("<i2").tobytes())


def fake_data(root, takes: int = 6):
  """A data folder laid out like shared/data: digit d is a 0.3 s tone at 300 + 250 d Hz over silence."""
  rec = root / "free_spoken_digit" / "recordings"
  rec.mkdir(parents=True)
  rng = np.random.default_rng(0)
  for d in range(10):
    for si, s in enumerate(SPEAKERS):
      for k in range(takes):
        t = np.arange(int(0.3 * 8000)) / 8000
        tone = (0.05 + 0.3 * si) * np.sin(2 * np.pi * (300 + 250 * d) * t)
        x = np.concatenate([np.zeros(800), tone, np.zeros(400)]) + rng.normal(0, 1e-4, 3600)
        _write(rec / f"{d}_{s}_{k}.wav", x, 8000)
  noise = root / "speech_commands_background_noise"
  noise.mkdir()
  _write(noise / "white_noise.wav", rng.normal(0, 0.3, 16000 * 12), 16000)
  return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(fake_data(tmp_path_factory.mktemp("speech_data")))


def test_corpus_is_checked_trimmed_and_levelled(data_dir):
  c = speech.load_corpus(data_dir)
  assert len(c.clips) == 10 * 2 * 6 and c.noise_names == ("white_noise",)
  lengths = np.array([len(x) for x in c.clips])
  assert (np.abs(lengths - 2400) <= 2 * 160 + 80).all()  # the 0.3 s tone plus margins, not 0.45 s
  np.testing.assert_allclose([speech.rms(x) for x in c.clips], speech.SPEECH_RMS, rtol=1e-3)
  assert len(c.noise_train[0]) == int(8000 * 12 * 0.8)  # resampled to 8 kHz, 80% for training
  np.testing.assert_allclose(speech.rms(np.concatenate([c.noise_train[0], c.noise_test[0]])), 1.0,
                             rtol=1e-3)


def test_splits(data_dir):
  c = speech.load_corpus(data_dir)
  train, test = speech.split_indices(c, "usual")
  assert (c.takes[test] < 5).all() and (c.takes[train] >= 5).all()
  train, test = speech.split_indices(c, "speaker=theo")
  assert {c.speakers[i] for i in test} == {"theo"} and "theo" not in {c.speakers[i] for i in train}
  with pytest.raises(ValueError, match="unknown speaker 'bob'"):
    speech.split_indices(c, "speaker=bob")


def test_a_bad_clip_fails_naming_it_before_training(tmp_path):
  root = fake_data(tmp_path, takes=1)
  (root / "free_spoken_digit" / "recordings" / "3_theo_0.wav").write_bytes(b"RIFF....junk")
  with pytest.raises(ValueError, match="3_theo_0.wav"):
    speech.load_corpus(str(root))
  with pytest.raises(FileNotFoundError, match="free_spoken_digit/recordings"):
    speech.load_corpus(str(tmp_path / "nowhere"))


def test_connected_digits_are_a_pure_function_of_the_rng(data_dir):
  c = speech.load_corpus(data_dir)
  pool = np.arange(len(c.clips))
  a = speech.connected_digits(np.random.default_rng([3, 7]), c, pool, c.noise_train, 40000)
  b = speech.connected_digits(np.random.default_rng([3, 7]), c, pool, c.noise_train, 40000)
  np.testing.assert_array_equal(a[0], b[0])
  assert a[1] == b[1] and 1 <= len(a[1]) <= 7
  # Without noise, the loudest frequency of each 0.3 s tone says which digit it is.
  x, ds = speech.connected_digits(np.random.default_rng(5), c, pool, c.noise_train, 40000,
                                  3, 3, 0.2, (200.0, 200.0))
  x = x[:len(x) // 400 * 400]
  spec = np.abs(np.fft.rfft(x.reshape(-1, 400) * np.hanning(400), axis=-1))  # 50 ms frames
  loud = spec.max(-1) > 0.3 * spec.max()
  found = []
  for f in spec.argmax(-1)[loud] * 20:
    d = int(round((f - 300) / 250))
    if not found or found[-1] != d:
      found.append(d)
  assert found == ds


def test_trigger_clips_have_separate_words_and_targets(data_dir):
  from recurrent.tasks import trigger_word
  c = speech.load_corpus(data_dir)
  cfg = trigger_config.get_config("smoke")
  model = TriggerModel(kernel=4, stride=2, channels=4, hidden=4)
  rng = np.random.default_rng(0)
  for _ in range(5):
    x, pos, neg = speech.trigger_clip(rng, c, np.arange(len(c.clips)), c.noise_train, 7,
                                      (5.0, 5.0), 3, 3, min_trigger_gap_s=1.0)
    ends = sorted(pos + neg)
    assert len(x) == 40000 and all(b - a >= 2400 + 800 for a, b in zip(ends, ends[1:]))
    assert all(b - a >= 8000 for a, b in zip(pos, pos[1:]))
  batch, ends = trigger_word.make_examples(np.random.default_rng(1), c, np.arange(len(c.clips)),
                                           c.noise_train, 8, cfg.task, model)
  for i in range(8):
    want = np.zeros(batch["target"].shape[1])
    for e in ends[i]:
      u0 = int(np.ceil(e / 160)) - 1
      want[u0:u0 + cfg.task.label_frames] = 1
    np.testing.assert_array_equal(batch["target"][i], want)


@pytest.mark.parametrize("chunk_outputs", [1, 5])
def test_trigger_streaming_equals_offline(chunk_outputs):
  model = TriggerModel(kernel=5, stride=2, channels=8, hidden=12,
                       norm=(tuple(np.linspace(-3, 1, 40)), tuple(np.linspace(1, 2, 40))))
  params = model.init(jax.random.key(0))
  x = jax.random.normal(jax.random.key(1), (2, 160 * 24)) * 0.1
  offline = jax.jit(model.logits)(params, x)
  state, outs = model.stream_init(2), []
  n = 160 * chunk_outputs
  step = jax.jit(model.stream_step)
  for a in range(0, x.shape[1], n):
    state, o = step(params, state, x[:, a:a + n])
    outs.append(o)
  np.testing.assert_allclose(jnp.concatenate(outs, 1), offline, atol=1e-5)
  with pytest.raises(ValueError, match="multiple of 160"):
    model.stream_step(params, model.stream_init(2), x[:, :100])


def test_trigger_model_is_causal():
  model = TriggerModel(kernel=7, stride=2, channels=8, hidden=8)
  params = model.init(jax.random.key(0))
  x = np.asarray(jax.random.normal(jax.random.key(1), (1, 160 * 20))) * 0.1
  y = x.copy()
  y[:, 160 * 12:] += 1.0  # change the audio from output frame 12 on
  logits = jax.jit(model.logits)
  a, b = logits(params, x), logits(params, y)
  np.testing.assert_allclose(a[:, :12], b[:, :12], atol=1e-6)
  assert np.abs(a[:, 12:] - b[:, 12:]).max() > 1e-3


def test_event_scoring_by_hand():
  p = np.zeros(100)
  p[10:14] = 0.9
  p[15:17] = 0.8   # 1 frame after the first run: merged with it (gap 2)
  p[60:62] = 0.7   # a false alarm
  dets = events.detections(p, 0.5, 2, 0.02)
  np.testing.assert_allclose(dets, [0.22, 1.22])
  s = events.score([[0.2, 1.8]], [dets], 2.0, window=0.5, tolerance=0.1)
  assert (s["precision"], s["recall"], s["events"], s["detections"]) == (0.5, 0.5, 2, 2)
  assert s["false_alarms_per_min"] == pytest.approx(30.0)
  assert s["latency_mean_s"] == pytest.approx(0.02)
  assert events.match([1.0, 1.1], [1.2], 0.5, 0.0) == [(1.0, 1.2)]  # one detection, one event


def test_seq2seq_reads_frames():
  model = Seq2Seq(src_vocab=1, tgt_vocab=6, embed_size=8, cell="gru", encoder_sizes=(8,),
                  decoder_sizes=(16,), src_features=5)
  params = model.init(jax.random.key(0))
  x = jax.random.normal(jax.random.key(1), (2, 7, 5))
  logits, w = jax.jit(model.forward)(params, x, jnp.array([7, 4]), jnp.ones((2, 3), jnp.int32))
  assert logits.shape == (2, 3, 6) and w.shape == (2, 3, 7)
  np.testing.assert_allclose(w[1, :, 4:], 0.0)  # no attention past the frames
  with pytest.raises(ValueError, match=r"src: expected \[B, S, 5\] frames"):
    model.encode(params, jnp.ones((2, 7), jnp.int32), jnp.array([7, 4]))


@pytest.mark.parametrize("variant", [  # attention over frames is also tested by test_seq2seq_reads_frames
    "method=ctc", pytest.param("method=attention,split=speaker_theo", marks=pytest.mark.slow)])
def test_digits_smoke_trains_through_the_harness(tmp_path, data_dir, variant):
  config = digits_config.get_config(f"smoke,{variant}")
  config.unlock()
  config.task.data_dir = data_dir
  final = loop.train_and_evaluate(config, tmp_path)
  assert np.isfinite(final["eval"]["loss"]) and 0.0 <= final["eval"]["utterance_accuracy"] <= 1.0
  report = json.loads((tmp_path / "digits_report.json").read_text())
  assert report["step"] == 6 and report["digit_error_rate"] == final["eval"]["digit_error_rate"]
  figure = "ctc_posteriors.png" if "ctc" in variant else "attention_alignment.png"
  assert (tmp_path / figure).exists() and (tmp_path / "samples.txt").exists()


def test_trigger_word_smoke_trains_through_the_harness(tmp_path, data_dir):
  config = trigger_config.get_config("smoke")
  config.unlock()
  config.task.data_dir = data_dir
  final = loop.train_and_evaluate(config, tmp_path)
  assert 0.0 <= final["eval"]["f1"] <= 1.0
  report = json.loads((tmp_path / "trigger_report.json").read_text())
  assert report["streaming_max_abs_diff"] < 1e-4
  assert (tmp_path / "trigger_word.png").exists()


def test_digits_config_variants():
  assert digits_config.get_config("split=speaker_lucas").task.split == "speaker=lucas"
  assert digits_config.get_config("method=attention").task.method == "attention"
  with pytest.raises(ValueError, match="unknown split"):
    digits_config.get_config("split=speaker_bob")


def test_speech_models_reach_the_configs_recurrence_settings():
  """model.unroll/impl/remat/param_dtype reach the CTC encoder and the trigger GRU, values unchanged."""
  from recurrent.models import stack_kwargs
  from recurrent.speech import CTCModel
  config = digits_config.get_config()
  m = config.model
  m.impl, m.remat, m.unroll, m.param_dtype, m.highway = "scan", 3, 2, "bfloat16", True
  ctc = CTCModel(12, 11, m.cell, (6, 6), **stack_kwargs(m))
  enc = ctc.encoder
  assert (enc.impl, enc.remat, enc.unroll, enc.highway) == ("scan", 3, 2, True)
  assert enc.layers[0].cell.param_dtype == jnp.bfloat16
  x = jax.random.normal(jax.random.key(0), (2, 10, 12))
  lengths = jnp.array([10, 6])
  plain = CTCModel(12, 11, "gru", (6, 6))
  fast = CTCModel(12, 11, "gru", (6, 6), impl="hoisted", remat=4, unroll=2)
  p = plain.init(jax.random.key(1))
  np.testing.assert_allclose(fast.logits(p, x, lengths), plain.logits(p, x, lengths), atol=1e-5)
  trig = TriggerModel(kernel=5, stride=2, channels=8, hidden=12)
  trig_fast = TriggerModel(kernel=5, stride=2, channels=8, hidden=12, impl="scan", remat=3,
                           unroll=2)
  tp = trig.init(jax.random.key(2))
  audio = jax.random.normal(jax.random.key(3), (2, 160 * 16)) * 0.1
  np.testing.assert_allclose(trig_fast.logits(tp, audio), trig.logits(tp, audio), atol=1e-5)
  with pytest.raises(ValueError, match="impl"):
    TriggerModel(impl="fused")
