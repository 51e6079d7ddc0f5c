"""Captioning (issue 19): IDX files, the canvas generator by hand, the captioner's attention and scores, a smoke run."""

import functools
import gzip
import json
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import captioning as captioning_config
from experiments import outputs
from recurrent import decoding
from recurrent.captioning import Captioner, attention_penalty, region_positions
from recurrent.data import canvas as C
from recurrent.data import mnist
from recurrent.seq2seq import BOS, EOS, Seq2Seq, sequence_logprob
from recurrent.tasks import captioning as task_lib
from recurrent.training import loop


def write_idx(path, array, magic=None, gz=True):
  """An IDX file written from the format's definition (big-endian header, then uint8 data)."""
  array = np.asarray(array, np.uint8)
  magic = (0x0800 | array.ndim) if magic is None else magic
  raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape)
  raw += array.tobytes()
  path.write_bytes(gzip.compress(raw) if gz else raw)


def fake_mnist(root, n_train=30, n_test=20, train_value=200, test_value=100):
  """mnist/ with blocky 'digits': train ink is ``train_value``, test ink ``test_value``."""
  d = root / "mnist"
  d.mkdir(parents=True, exist_ok=True)
  for split, n, value in (("train", n_train, train_value), ("t10k", n_test, test_value)):
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 6:22, 8:20] = value
    labels = np.arange(n) % 10
    write_idx(d / f"{split}-images-idx3-ubyte.gz", images)
    write_idx(d / f"{split}-labels-idx1-ubyte.gz", labels)
  return root


# ------------------------------------------------------------------------------------ IDX files

def test_idx_files_read_gzipped_or_not(tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
  write_idx(tmp_path / "a.gz", images)
  write_idx(tmp_path / "b", images, gz=False)
  np.testing.assert_array_equal(mnist.read_idx(tmp_path / "a.gz", 3), images)
  np.testing.assert_array_equal(mnist.read_idx(tmp_path / "b", 3), images)


@pytest.mark.parametrize("case", ["magic", "short", "trailing", "gzip", "header"])
def test_a_corrupt_idx_file_fails_naming_it(tmp_path, case):
  p = tmp_path / "x.gz"
  images = np.zeros((4, 28, 28))
  if case == "magic":
    write_idx(p, images, magic=0x00000801)
  elif case in ("short", "trailing"):
    raw = struct.pack(">IIII", 0x803, 4, 28, 28) + bytes(4 * 784 + (-10 if case == "short" else 7))
    p.write_bytes(gzip.compress(raw))
  elif case == "gzip":
    p.write_bytes(gzip.compress(bytes(3000))[:40])
  else:
    p.write_bytes(gzip.compress(b"\x00\x00"))
  with pytest.raises(ValueError, match=r"x\.gz.*expected an IDX file of 3"):
    mnist.read_idx(p, 3)


def test_missing_or_inconsistent_mnist_files_fail_naming_them(tmp_path):
  with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
    mnist.load(str(tmp_path), "test")
  fake_mnist(tmp_path)
  write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.arange(19) % 10)
  with pytest.raises(ValueError, match="20 images but 19 labels"):
    mnist.load(str(tmp_path), "test")
  write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.arange(20))
  with pytest.raises(ValueError, match="t10k-labels.*label 19; expected digits 0-9"):
    mnist.load(str(tmp_path), "test")
  with pytest.raises(ValueError, match="split: must be one of"):
    mnist.load(str(tmp_path), "valid")


# ------------------------------------------------------------------------------------ canvases

def test_caption_of_a_hand_made_layout():
  spec = C.CanvasSpec(rows=2, cols=2, max_digits=4)
  # 3 in the bottom-right cell, 7 top-left, 9 bottom-left: reading order 7, 9, 3.
  assert C.caption(spec, [3, 7, 9], [3, 0, 2]) == [
      "seven", "top", "left", "nine", "bottom", "left", "three", "bottom", "right"]
  assert C.caption(C.CanvasSpec(rows=1, cols=3), [5, 1], [2, 1]) == ["one", "middle", "five",
                                                                      "right"]
  assert C.place_words(C.CanvasSpec(rows=3, cols=3), 4) == ["centre"]
  assert C.place_words(C.CanvasSpec(rows=1, cols=1, max_digits=1), 0) == []
  assert spec.max_words == 12 and spec.shape == (56, 56)


def test_compose_places_unscaled_digits_exactly_and_turns_counter_clockwise():
  spec = C.CanvasSpec(rows=2, cols=2, scale_min=1.0, scale_max=1.0)
  r = np.random.default_rng(0)
  a, b = r.integers(0, 256, (28, 28)), r.integers(0, 256, (28, 28))
  # Cell centres (13.5, 13.5) and (41.5, 13.5), one of them shifted by whole pixels (3 down, -2 left).
  img = C.compose(spec, [a, b], [(13.5, 13.5), (44.5, 11.5)], [1.0, 1.0], [0.0, 0.0])
  # Top-left corners (0, 0) and (44.5 - 13.5, 11.5 - 13.5) = (31, -2), on a canvas padded by 4.
  want = np.zeros((64, 64))
  want[4:32, 4:32] = a
  want[35:63, 2:30] = np.maximum(want[35:63, 2:30], b)
  np.testing.assert_array_equal(img, want[4:60, 4:60].astype(np.uint8))
  bar = np.zeros((28, 28))
  bar[3:10, 13:15] = 255  # a bar above the centre turns to the left of it
  np.testing.assert_allclose(C.warp(bar, (28, 28), (13.5, 13.5), 1.0, 90.0), np.rot90(bar),
                             atol=1e-4)
  # Scale 2 about the centre, bilinear: output pixel i reads input (i - 13.5) / 2 + 13.5, so a
  # 2 x 2 square of 100 at rows/cols 13-14 becomes the profile 25 75 100 100 75 25 at 11-16.
  dot = np.zeros((28, 28))
  dot[13:15, 13:15] = 100
  want = np.zeros((28, 28))
  prof = np.array([25, 75, 100, 100, 75, 25]) / 100
  want[11:17, 11:17] = 100 * np.outer(prof, prof)
  np.testing.assert_allclose(C.warp(dot, (28, 28), (13.5, 13.5), 2.0, 0.0), want, atol=1e-4)


def test_canvases_put_each_digit_in_its_cell_in_reading_order():
  spec = C.CanvasSpec(rows=2, cols=3, min_digits=1, max_digits=4, max_rotation=10)
  # Digit d: a disc of radius 9 about the centre, value 20 (d + 1) (a disc, so that turning it
  # keeps it inside the 20 x 20 box that the generator keeps in the cell).
  yy, xx = np.mgrid[:28, :28]
  disc = (yy - 13.5) ** 2 + (xx - 13.5) ** 2 <= 81
  images = np.stack([np.where(disc, 20 * (d + 1), 0) for d in range(10)]).astype(np.uint8)
  labels = np.arange(10)
  r = np.random.default_rng(3)
  for _ in range(20):
    c = C.make_canvas(r, images, labels, spec)
    assert c.cells == sorted(c.cells) and len(set(c.cells)) == len(c.cells)
    assert c.words == C.caption(spec, c.labels, c.cells)
    for cell in range(6):
      r0, c0 = divmod(cell, 3)
      patch = c.image[r0 * 28:(r0 + 1) * 28, c0 * 28:(c0 + 1) * 28].astype(float)
      if cell in c.cells:
        d = c.labels[c.cells.index(cell)]
        assert abs(patch.max() - 20 * (d + 1)) <= 1  # its digit, and only its digit
        ys, xs = np.nonzero(patch > 10 * (d + 1))
        centre = c.centres[c.cells.index(cell)]
        assert abs(ys.mean() + r0 * 28 - centre[0]) < 1.0
        assert abs(xs.mean() + c0 * 28 - centre[1]) < 1.0
      else:
        assert patch.max() == 0


def test_batches_are_a_pure_function_of_the_generator():
  spec = C.CanvasSpec()
  images = np.random.default_rng(0).integers(0, 256, (50, 28, 28)).astype(np.uint8)
  labels = np.arange(50) % 10
  b1 = C.make_batch(np.random.default_rng([0, 7]), images, labels, spec, 6)
  b2 = C.make_batch(np.random.default_rng([0, 7]), images, labels, spec, 6)
  b3 = C.make_batch(np.random.default_rng([0, 8]), images, labels, spec, 6)
  for k in b1:
    np.testing.assert_array_equal(b1[k], b2[k])
  assert not np.array_equal(b1["src"], b3["src"])
  for i in range(6):
    words = C.words_of(b1["tgt_out"][i])
    L = b1["tgt_len"][i]
    assert b1["tgt_out"][i, L - 1] == EOS and b1["tgt_in"][i, 0] == BOS
    assert len(words) == L - 1 and b1["tgt_in"][i, 1:L].tolist() == b1["tgt_out"][i, :L - 1].tolist()
    digits = [d for d in b1["digits"][i] if d >= 0]
    assert [w for w in words if w in C.DIGIT_WORDS] == [C.DIGIT_WORDS[d] for d in digits]


@pytest.mark.parametrize("field,value,match", [
    ("max_digits", 5, "max_digits <= rows \\* cols = 4"),
    ("min_digits", 0, "task.min_digits: must be an integer >= 1"),
    ("scale_max", 1.5, "scale_max <= cell / 20"),
    ("max_rotation", 90.0, "task.max_rotation"),
    ("rows", 4, "at most 3"),
    ("cell", 2.5, "task.cell: must be an integer")])
def test_bad_canvas_config_fails_naming_the_field(field, value, match):
  with pytest.raises(ValueError, match=match):
    C.CanvasSpec(**{field: value})


def test_region_cell_overlap_by_hand():
  spec = C.CanvasSpec(rows=2, cols=2)
  ov = task_lib.cell_overlap(spec, (7, 7))
  np.testing.assert_allclose(ov.sum(1), 1.0)
  assert ov[0].tolist() == [1, 0, 0, 0] and ov[48].tolist() == [0, 0, 0, 1]
  np.testing.assert_allclose(ov[3 * 7 + 3], 0.25)  # the centre region straddles all four cells
  np.testing.assert_allclose(ov[3 * 7 + 0], [0.5, 0, 0.5, 0])


# ------------------------------------------------------------------------------------ the model

def test_regions_without_an_encoder_match_numpy_and_ignore_padding():
  model = Seq2Seq(1, 9, embed_size=5, encoder_sizes=(), decoder_sizes=(6,), attention="bahdanau",
                  attn_size=4, output_size=7, src_features=3, cell="gru", bridge="learned")
  p = model.init(jax.random.key(0))
  assert "encoder" not in p and model.bridge_kind == "learned"
  r = np.random.default_rng(0)
  src = r.normal(size=(2, 6, 3)).astype(np.float32)
  n = np.array([6, 4])
  memory, carry = jax.jit(model.encode)(p, src, n)
  W, b = np.asarray(p["src_embed"]["W"]), np.asarray(p["src_embed"]["b"])
  for i in range(2):
    keys = src[i, :n[i]] @ W + b
    np.testing.assert_allclose(memory.keys_BSE[i, :n[i]], keys, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(memory.keys_BSE[i, n[i]:], 0.0)
    np.testing.assert_allclose(memory.summary_BE[i], keys.mean(0), rtol=1e-5, atol=1e-6)
    h0 = np.tanh(keys.mean(0) @ np.asarray(p["bridge"][0][0]["W"]) + np.asarray(p["bridge"][0][0]["b"]))
    np.testing.assert_allclose(carry.layers[0][i], h0, rtol=1e-5, atol=1e-6)
  tgt_in = np.array([[BOS, 4, 5], [BOS, 6, 3]])
  logits, w = jax.jit(model.forward)(p, src, n, tgt_in)
  np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
  np.testing.assert_array_equal(w[1, :, 4:], 0.0)
  garbage = src.copy()
  garbage[1, 4:] = 1e3
  logits2, w2 = jax.jit(model.forward)(p, garbage, n, tgt_in)
  np.testing.assert_allclose(logits2, logits, atol=1e-5)
  np.testing.assert_allclose(w2, w, atol=1e-6)


def small_captioner(attention):
  return Captioner(vocab=len(C.VOCAB), image_shape=(16, 24), conv_features=(4, 6),
                   attention=attention, global_size=10, cell="lstm", embed_size=8,
                   decoder_sizes=(12,), attn_size=6, output_size=9)


@functools.partial(jax.jit, static_argnums=0)
def _scores(model, p, images, n, tgt_out, tgt_len):
  tgt_in = jnp.concatenate([jnp.full_like(tgt_out[:, :1], BOS), tgt_out[:, :-1]], 1)
  logits, w = model.forward(p, images, n, tgt_in)
  memory, carry = model.encode(p, images, n)
  bos = jnp.full((images.shape[0],), BOS)
  stepwise = decoding.score(model.step_fn(p, memory), carry, bos, tgt_out, tgt_len)
  return sequence_logprob(logits, tgt_out, tgt_len), stepwise, w


@pytest.mark.parametrize("attention", ["bahdanau", "none"])
def test_captioner_teacher_forced_logprob_equals_stepwise_decoding(attention):
  model = small_captioner(attention)
  assert model.grid == (4, 6) and model.num_regions == 24
  p = model.init(jax.random.key(1))
  r = np.random.default_rng(1)
  images = r.integers(0, 256, (3, 16, 24)).astype(np.uint8)
  tgt_out = r.integers(3, len(C.VOCAB), (3, 5))
  tgt_len = np.array([5, 2, 4])
  tgt_out[np.arange(3), tgt_len - 1] = EOS
  n = np.array([24, 24, 17])  # the last image: regions 17.. masked
  tf, stepwise, w = _scores(model, p, images, n, tgt_out, tgt_len)
  np.testing.assert_allclose(tf, stepwise, rtol=1e-5, atol=1e-5)
  if attention == "bahdanau":
    assert w.shape == (3, 5, 24)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(w[2, :, 17:], 0.0)
    assert (w[:2] > 0).all()


def test_region_positions_and_doubly_stochastic_penalty_by_hand():
  pos = np.asarray(region_positions(2, 3))
  np.testing.assert_allclose(pos, [[-1, -1], [-1, 0], [-1, 1], [1, -1], [1, 0], [1, 1]])
  w = np.random.default_rng(0).dirichlet(np.ones(4), size=(2, 3))  # [B=2, T=3, R=4]
  lens = np.array([3, 1])
  want = [sum((1 - sum(w[b, t, r] for t in range(lens[b]))) ** 2 for r in range(4))
          for b in range(2)]
  np.testing.assert_allclose(attention_penalty(jnp.asarray(w), lens), want, rtol=1e-6)


def test_bad_captioner_fields_fail_naming_them():
  with pytest.raises(ValueError, match="image_shape: H and W must be positive multiples of 2\\^2"):
    Captioner(vocab=19, image_shape=(18, 24), conv_features=(4, 6))
  with pytest.raises(ValueError, match="attention: unknown kind"):
    Captioner(vocab=19, image_shape=(16, 24), attention="soft")
  model = small_captioner("bahdanau")
  with pytest.raises(ValueError, match="src: expected images \\[B, 16, 24\\]"):
    model.regions(model.init(jax.random.key(0)), np.zeros((2, 16, 16)))


# ------------------------------------------------------------------------------------ task

def test_config_variants_and_task_checks(tmp_path):
  c = captioning_config.get_config("attention=none")
  assert c.model.attention == "none" and c.task.attention_penalty == 0.0
  assert captioning_config.get_config("doubly_stochastic").task.attention_penalty == 1.0
  with pytest.raises(ValueError, match="unknown attention"):
    captioning_config.get_config("attention=hard")
  fake_mnist(tmp_path)
  c = captioning_config.get_config("smoke,attention=none,doubly_stochastic")
  c.unlock()
  c.task.data_dir = str(tmp_path)
  with pytest.raises(ValueError, match="task.attention_penalty: the doubly stochastic term needs"):
    task_lib.build(c)
  c = captioning_config.get_config("smoke")
  c.unlock()
  c.task.data_dir = str(tmp_path)
  c.decode.max_len = 4
  with pytest.raises(ValueError, match="decode.max_len: must be >= the longest caption"):
    task_lib.build(c)


def test_held_out_canvases_use_test_digits_only(tmp_path):
  fake_mnist(tmp_path, train_value=200, test_value=100)
  c = captioning_config.get_config("smoke")
  c.unlock()
  c.task.data_dir = str(tmp_path)
  c.task.scale_min = c.task.scale_max = 1.0
  c.task.max_rotation = 0.0
  task = task_lib.build(c)
  train = task.train_batch(0)
  assert set(np.unique(train["src"])) <= set(range(0, 201)) and train["src"].max() == 200
  for batch in task.eval_batches():
    assert batch["src"].max() == 100
  assert not np.array_equal(task.train_batch(1)["src"], train["src"])
  np.testing.assert_array_equal(task.train_batch(1)["src"], task.train_batch(1)["src"])


@pytest.mark.parametrize("attention", [
    "bahdanau", pytest.param("none", marks=pytest.mark.slow)])  # the suite's time: one by default
def test_smoke_trains_through_the_harness_and_reports(tmp_path, attention):
  data = fake_mnist(tmp_path / "data")
  config = captioning_config.get_config(f"smoke,attention={attention}")
  config.unlock()
  config.task.data_dir = str(data)
  final = loop.train_and_evaluate(config, tmp_path / "run")
  assert np.isfinite(final["eval"]["loss"])
  assert {"bleu_greedy", "bleu_beam", "exact_greedy", "exact_beam",
          "beam_search_error_fraction"} <= set(final["eval"])
  report = json.loads((tmp_path / "run" / "captioning_report.json").read_text())
  a = report["error_analysis"]
  assert a["errors"] == a["search_errors"] + a["model_errors"]
  assert (tmp_path / "run" / "attention_words.png").is_file() == (attention != "none")
  caps = json.loads((tmp_path / "run" / "captions.json").read_text())
  assert len(caps["refs"]) == len(caps["greedy"]) == len(caps["beam"]) == 8
  if attention == "none":
    return
  # experiments/captioning_report.py on this run: its table, captions figure and attention copy
  table, written = outputs.captioning_report([tmp_path / "run"], tmp_path / "figures", canvases=3)
  assert f"| bahdanau soft attention | 6 | {report['bleu_greedy']:.2f} |" in table
  assert [p.name for p in written] == ["captioning_attention_bahdanau.png", "captioning_captions.png"]
  assert written[0].read_bytes() == (tmp_path / "run" / "attention_words.png").read_bytes()
