"""Piano-roll loading, next-step inputs, the per-step NLL and its split average, and the music config's smoke run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

from configs import music as music_config
from recurrent.data import music
from recurrent.tasks import music as music_task
from smoke_steps import train_steps


def make_rolls(seed, counts=(5, 3, 3), max_len=11):
  rng = np.random.default_rng(seed)
  return {split: [(rng.random((int(rng.integers(2, max_len)), 88)) < 0.1).astype(np.uint8)
                  for _ in range(n)] for split, n in zip(music.SPLITS, counts)}


def write_mat(path, rolls):
  cells = {}
  for split, pieces in rolls.items():
    arr = np.empty((1, len(pieces)), dtype=object)
    for i, p in enumerate(pieces):
      arr[0, i] = p
    cells[f"{split}data"] = arr
  path.parent.mkdir(parents=True, exist_ok=True)
  scipy.io.savemat(str(path), cells)


def test_load_piano_rolls_round_trips_a_mat_file(tmp_path):
  rolls = make_rolls(0)
  write_mat(tmp_path / "x.mat", rolls)
  loaded = music.load_piano_rolls(tmp_path / "x.mat")
  for split in music.SPLITS:
    assert len(loaded[split]) == len(rolls[split])
    for a, b in zip(loaded[split], rolls[split]):
      assert a.dtype == np.uint8
      np.testing.assert_array_equal(a, b)


def test_load_rejects_non_binary_rolls_and_missing_keys(tmp_path):
  rolls = make_rolls(1)
  rolls["valid"][1] = rolls["valid"][1] * 2
  write_mat(tmp_path / "bad.mat", rolls)
  with pytest.raises(ValueError, match=r"validdata\[1\].*binary"):
    music.load_piano_rolls(tmp_path / "bad.mat")
  scipy.io.savemat(str(tmp_path / "nokey.mat"), {"traindata": np.zeros((1, 1))})
  with pytest.raises(ValueError, match="validdata"):
    music.load_piano_rolls(tmp_path / "nokey.mat")


def test_pitch_encoding_round_trips_and_shift_right():
  steps = [[60, 64, 67], [], [21, 108]]
  roll = music.from_pitches(steps)
  assert roll.shape == (3, 88) and roll[0, 60 - 21] == 1 and roll[2, 0] == 1 and roll[2, 87] == 1
  assert music.pitches(roll) == steps
  with pytest.raises(ValueError, match="outside"):
    music.from_pitches([[20]])
  x = music.shift_right(roll)
  np.testing.assert_array_equal(x[0], 0)
  np.testing.assert_array_equal(x[1:], roll[:-1])


def numpy_nll_per_step(logits_TN, targets_TN):
  """-sum_n [x log sigmoid(z) + (1-x) log(1-sigmoid(z))], written out in float64."""
  z, x = logits_TN.astype(np.float64), targets_TN.astype(np.float64)
  p = 1.0 / (1.0 + np.exp(-z))
  return -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)


def test_note_nll_sums_over_notes_and_masks_padding():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(2, 5, 88)).astype(np.float32)
  targets = (rng.random((2, 5, 88)) < 0.2).astype(np.float32)
  lengths = np.array([5, 2], np.int32)
  total, count = music_task.note_nll(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(lengths))
  expect = numpy_nll_per_step(logits[0], targets[0]).sum() + numpy_nll_per_step(logits[1, :2], targets[1, :2]).sum()
  assert int(count) == 7
  np.testing.assert_allclose(float(total), expect, rtol=1e-5)


def smoke_config(tmp_path, arg):
  config = music_config.get_config(arg)
  config.task.data_dir = str(tmp_path)
  config.task.figure = False
  return config


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_units_give_about_twenty_thousand_parameters(cell):
  config = music_config.get_config(f"cell={cell}")
  task = music_task.make_task(config, make_rolls(3, counts=(8, 2, 2)))
  n = sum(x.size for x in jax.tree.leaves(jax.eval_shape(task.init_params, jax.random.key(0))))
  assert config.model.hidden_sizes == (music_config.UNITS[cell],)
  assert 18_000 < n < 28_000, n


def test_split_average_is_over_all_time_steps_and_smoke_training_runs(tmp_path):
  rolls = make_rolls(4, counts=(9, 5, 4))
  write_mat(tmp_path / music.DATASETS["jsb"], rolls)
  config = smoke_config(tmp_path, "cell=gru,smoke")
  task = music_task.build(config)
  params, losses = train_steps(task, config, 4)
  report = task.report(params, 4)
  assert set(report.scalars) == {"train_nll", "test_nll"}
  # Brute force: run each test piece unpadded-in-effect (garbage after its end, no lengths: the
  # model is causal) and average the NumPy per-step NLL over every step of every piece.
  model = music_task.SequenceTagger(**music_task.rnn_kwargs(config.model), num_outputs=88)
  pieces = rolls["test"]
  x = np.random.default_rng(9).random((len(pieces), 16, 88)).astype(np.float32)
  for b, p in enumerate(pieces):
    x[b, :len(p)] = music.shift_right(p)
  logits = np.asarray(model.apply({"params": params}, x))
  per_step = np.concatenate([numpy_nll_per_step(logits[b, :len(p)], p) for b, p in enumerate(pieces)])
  assert len(per_step) == sum(len(p) for p in pieces)
  np.testing.assert_allclose(report.scalars["test_nll"], per_step.mean(), rtol=1e-5)


def test_train_batches_are_pure_and_crop_windows(tmp_path):
  rolls = make_rolls(5, counts=(10, 2, 2), max_len=30)
  config = music_config.get_config("dataset=nottingham,smoke")
  assert config.task.dataset == "nottingham" and config.task.train_crop == 200
  config.task.train_crop = 4
  task = music_task.make_task(config, rolls)
  a, b = task.train_batch(3), task.train_batch(3)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert a["lengths"].max() == 4 and a["lengths"].min() >= 1
  # Each row is a window of one of the step's pieces; its inputs are the frames just before.
  idx = music_task.batching.EpochOrder(10, config.batch_size, config.seed).indices(3)
  for b, i in enumerate(idx):
    piece, L = rolls["train"][i], a["lengths"][b]
    starts = [s for s in range(len(piece) - L + 1)
              if np.array_equal(piece[s:s + L], a["targets"][b, :L])]
    assert any(np.array_equal(music.shift_right(piece)[s:s + L], a["inputs"][b, :L]) for s in starts)


def test_config_variants_and_missing_data(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match="cell"):
    music_config.get_config("cell=elman")
  with pytest.raises(ValueError, match="unknown variant"):
    music_config.get_config("fast")
  sweep = music_config.get_sweep()
  assert {(p["model.cell"], p["model.hidden_sizes"]) for p in sweep} == {
      ("rnn", (100,)), ("gru", (46,)), ("lstm", (36,))}
  monkeypatch.delenv("RECURRENT_DATA_DIR", raising=False)
  config = smoke_config(tmp_path, "smoke")
  with pytest.raises(FileNotFoundError, match="JSB_Chorales.mat"):
    music_task.build(config)


@pytest.mark.parametrize("field, value", [("task.bucket", -1), ("task.eval_batch_size", 0)])
def test_bad_values_fail_naming_the_field(tmp_path, field, value):
  """Found by trying bad values of every field (issue 18): a broadcast error, or 'batch_size'."""
  write_mat(tmp_path / music.DATASETS["jsb"], make_rolls(4, counts=(9, 5, 4)))
  config = smoke_config(tmp_path, "smoke")
  config.task[field.split(".")[1]] = value
  with pytest.raises(ValueError, match=field.replace(".", r"\.")):
    music_task.build(config)


@pytest.mark.slow  # 20 s (a harness run, evaluation and two sampling loops): the suite's time budget
def test_generate_samples_from_a_trained_highway_stack(tmp_path):
  """experiments/music_generate's work (outputs.music_samples) on a 2-layer highway run of the harness."""
  from experiments import outputs
  from recurrent import music_sampling
  from recurrent.training import loop
  rolls = make_rolls(7, counts=(9, 3, 3), max_len=12)
  write_mat(tmp_path / "data" / music.DATASETS["jsb"], rolls)
  config = smoke_config(tmp_path / "data", "cell=gru,smoke")
  config.model.hidden_sizes = (8, 8)
  config.model.highway = True              # a stack the sampler must rebuild with its gates
  config.num_steps = config.eval_every = config.checkpoint_every = 2
  final = loop.train_and_evaluate(config, tmp_path / "run")
  step, sampled, files = outputs.music_samples(tmp_path / "run", "best", steps=5, samples=1,
                                               prime_steps=3, seed=1)
  assert step == final["best_step"]
  assert [f.name for f in files] == ["sample_0.mid", "primed_0.mid", "piano_rolls.png"]
  scratch, primed = sampled
  assert scratch.shape == (5, 88) and primed.shape == (3 + 5, 88)
  np.testing.assert_array_equal(primed[:3], rolls["test"][0][:3])   # the prime, then the samples
  assert set(np.unique(scratch)) <= {0.0, 1.0}
  for f, roll in zip(files, sampled):
    assert f.read_bytes() == music_sampling.midi_bytes(roll)
