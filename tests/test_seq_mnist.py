"""Sequential MNIST: pixel order, pooling and permutation against NumPy; splits; a smoke through the harness."""

import gzip
import struct

import jax
import numpy as np
import pytest

from configs import seq_mnist as seq_mnist_config
from recurrent.tasks import get_task, seq_mnist
from recurrent.training import loop


def write_idx(path, array):
  """An IDX file from the format's definition: magic 0x0800 | ndim, big-endian sizes, uint8 data."""
  array = np.asarray(array, np.uint8)
  raw = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
  path.write_bytes(gzip.compress(raw + array.tobytes()))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """mnist/ with 'digits' that a recurrent net can tell apart: class k lights row block k."""
  root = tmp_path_factory.mktemp("data")
  (root / "mnist").mkdir()
  rng = np.random.default_rng(0)
  for split, n in (("train", 160), ("t10k", 40)):
    labels = np.arange(n) % 10
    images = rng.integers(0, 30, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
      images[i, 2 * k + 4:2 * k + 6, 4:24] = 255
    write_idx(root / "mnist" / f"{split}-images-idx3-ubyte.gz", images)
    write_idx(root / "mnist" / f"{split}-labels-idx1-ubyte.gz", labels)
  return str(root)


def test_pixel_sequences_scanline_pooled_and_permuted():
  images = np.random.default_rng(1).integers(0, 256, (3, 28, 28)).astype(np.uint8)
  x = seq_mnist.pixel_sequences(images, 28, None)
  assert x.shape == (3, 784, 1) and x.dtype == np.float32
  for n in range(3):                       # step t reads row t // 28, column t % 28
    for t in (0, 27, 28, 400, 783):
      np.testing.assert_allclose(x[n, t, 0], images[n, t // 28, t % 28] / 255.0, rtol=1e-6)
  pooled = seq_mnist.pixel_sequences(images, 14, None)
  assert pooled.shape == (3, 196, 1)
  for r, c in ((0, 0), (5, 9), (13, 13)):  # the mean of the 2 x 2 block it stands for
    block = images[1, 2 * r:2 * r + 2, 2 * c:2 * c + 2].astype(np.float64)
    np.testing.assert_allclose(pooled[1, r * 14 + c, 0], block.mean() / 255.0, rtol=1e-6)
  perm = seq_mnist.pixel_permutation(14, 5)
  assert sorted(perm) == list(range(196))
  permuted = seq_mnist.pixel_sequences(images, 14, perm)
  np.testing.assert_array_equal(permuted[:, :, 0], pooled[:, perm, 0])
  np.testing.assert_array_equal(perm, seq_mnist.pixel_permutation(14, 5))  # fixed by its seed
  with pytest.raises(ValueError, match="task.size"):
    seq_mnist.pixel_sequences(images, 7, None)


def test_training_batches_cover_each_epoch_once():
  seen = np.concatenate([seq_mnist.epoch_indices(50, 8, 3, s) for s in range(6)])
  assert len(set(seen.tolist())) == 48     # 6 batches of 8 from one epoch: no repeats
  np.testing.assert_array_equal(seq_mnist.epoch_indices(50, 8, 3, 6)[:0], [])
  assert not np.array_equal(seq_mnist.epoch_indices(50, 8, 3, 0), seq_mnist.epoch_indices(50, 8, 3, 6))


def test_splits_and_the_masked_last_batch(data_dir):
  config = seq_mnist_config.get_config("smoke")
  config.unlock()
  config.task.data_dir = data_dir
  config.task.num_valid, config.task.eval_batch_size = 30, 20   # 30 = 20 + 10 (+ 10 padding rows)
  task = get_task(config)
  batches = list(task.eval_batches())
  assert [b["mask"].sum() for b in batches] == [20, 10] and batches[1]["x"].shape == (20, 196, 1)
  params = task.init_params(jax.random.key(0))
  loss, metrics = task.loss_fn(params, batches[1], None)
  assert float(metrics["loss"][1]) == 10.0                       # padding rows count nowhere
  batch = task.train_batch(0)
  assert batch["x"].shape == (8, 196, 1) and batch["y"].dtype == np.int32


def test_smoke_trains_through_the_harness(tmp_path, data_dir):
  config = seq_mnist_config.get_config("smoke,permuted")
  config.unlock()
  config.task.data_dir = data_dir
  final = loop.train_and_evaluate(config, tmp_path)
  assert 0.0 <= final["eval"]["accuracy"] <= 1.0 and np.isfinite(final["eval"]["test_loss"])


def test_bad_config_values_are_named(data_dir):
  for field, value in (("task.size", 20), ("task.num_valid", 0), ("task.eval_batch_size", 0)):
    config = seq_mnist_config.get_config("smoke")
    config.unlock()
    config.task.data_dir = data_dir
    node, name = config.task, field.split(".")[1]
    node[name] = value
    with pytest.raises(ValueError, match=field):
      get_task(config)
  config = seq_mnist_config.get_config("smoke")
  config.unlock()
  config.task.data_dir = data_dir + "/nowhere"
  with pytest.raises(FileNotFoundError, match="mnist"):
    get_task(config)


def test_step_budgets_and_the_sweep_over_every_cell():
  from recurrent.cells import CELLS
  config = seq_mnist_config.get_config("size=14,steps=2000")
  assert (config.num_steps, config.eval_every, config.checkpoint_every) == (2000, 1000, 1000)
  points = seq_mnist_config.get_sweep()
  assert len(points) == 21 and len({(p["model.cell"], p["seed"]) for p in points}) == 21
  assert {p["model.cell"] for p in points} <= set(CELLS)
  assert [p["seed"] for p in points[:7]] == [0] * 7  # seed 0 of every cell first


def test_figure_groups_finished_runs_by_cell_at_their_best_step(tmp_path):
  import json
  from recurrent.training import results

  def run(name, cell, accuracies, finished=True):
    wd = tmp_path / name
    wd.mkdir()
    (wd / "config.json").write_text(json.dumps({"model": {"cell": cell}}))
    rows = [{"kind": "eval", "step": 500 * (i + 1), "accuracy": a, "test_accuracy": a - 0.01}
            for i, a in enumerate(accuracies)]
    (wd / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if finished:
      best = 500 * (1 + max(range(len(accuracies)), key=accuracies.__getitem__))
      (wd / "final.json").write_text(json.dumps({"best_step": best, "step": 500 * len(accuracies)}))

  run("a0", "lstm", [0.5, 0.9])
  run("a1", "lstm", [0.8, 0.7])  # best at step 500
  run("a2", "gru", [0.3, 0.4])
  run("a3", "gru", [0.2], finished=False)
  (tmp_path / "a_summary.csv").write_text("name\n")  # a sweep's files beside its runs are not runs
  cells, series, unfinished = results.values_by([("pixel", str(tmp_path / "a*"))], "model.cell",
                                                "test_accuracy", order=["lstm"])
  assert cells == ["lstm", "gru"] and [p.name for p in unfinished] == ["a3"]
  np.testing.assert_allclose(series[0]["values"][0], [0.89, 0.79])
  np.testing.assert_allclose(series[0]["values"][1], [0.39])
