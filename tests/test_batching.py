"""The shared padding/batching: epochs as permutations, purity in (seed, step), padding and lengths."""

import numpy as np
import pytest

from recurrent.data import batching
from recurrent.data.paths import ENV, data_file


def test_each_epoch_sees_every_example_at_most_once_and_batches_are_pure():
  order = batching.EpochOrder(num_examples=23, batch_size=5, seed=7)
  assert order.steps_per_epoch == 4                     # 23 // 5; the last 3 of an epoch are dropped
  for epoch in range(3):
    idx = np.concatenate([order.indices(epoch * 4 + i) for i in range(4)])
    assert len(set(idx.tolist())) == 20 and idx.min() >= 0 and idx.max() < 23
  # A pure function of (seed, step): a fresh object, steps asked in any order, gives the same batch.
  again = batching.EpochOrder(23, 5, 7)
  for step in (9, 0, 5, 9):
    np.testing.assert_array_equal(again.indices(step), order.indices(step))
  # Epochs are different permutations; another seed is another order.
  assert not np.array_equal(order.indices(0), order.indices(4))
  assert not np.array_equal(batching.EpochOrder(23, 5, 8).indices(0), order.indices(0))


def test_epoch_order_rejects_bad_arguments():
  with pytest.raises(ValueError, match="batch_size"):
    batching.EpochOrder(4, 5, 0)
  with pytest.raises(ValueError, match="step"):
    batching.EpochOrder(10, 5, 0).indices(-1)


def test_pad_lengths_values_and_buckets():
  seqs = [np.array([1, 2, 3]), np.array([4]), np.arange(1, 21)]
  x, lengths = batching.pad(seqs, np.array([0, 1]), bucket=4, pad_value=0)
  assert x.shape == (2, 4) and x.dtype == seqs[0].dtype
  np.testing.assert_array_equal(lengths, [3, 1])
  np.testing.assert_array_equal(x, [[1, 2, 3, 0], [4, 0, 0, 0]])
  # The padded length is the longest rounded up to the bucket, capped (and cut) at max_len.
  x, lengths = batching.pad(seqs, np.array([2, 0]), bucket=8, max_len=12)
  assert x.shape == (2, 12)
  np.testing.assert_array_equal(lengths, [12, 3])
  np.testing.assert_array_equal(x[0], np.arange(1, 13))
  # -1 is an empty row; trailing feature axes are kept.
  frames = [np.ones((2, 3), np.float32), np.ones((5, 3), np.float32)]
  x, lengths = batching.pad(frames, np.array([1, -1, 0]), bucket=4, pad_value=-9)
  assert x.shape == (3, 8, 3)
  np.testing.assert_array_equal(lengths, [5, 0, 2])
  assert (x[1] == -9).all() and (x[2, 2:] == -9).all() and (x[2, :2] == 1).all()
  with pytest.raises(ValueError, match="indices"):
    batching.pad(seqs, np.array([-1, -1]))


def test_eval_batches_cover_every_example_once_with_a_fixed_batch_size():
  lengths = [5, 1, 9, 3, 3, 7, 2]
  batches = list(batching.eval_index_batches(7, 3, lengths))
  assert all(len(b) == 3 for b in batches)
  flat = np.concatenate(batches)
  assert sorted(flat[flat >= 0].tolist()) == list(range(7)) and (flat == -1).sum() == 2
  real = flat[flat >= 0]
  assert [lengths[i] for i in real] == sorted(lengths)  # grouped by length: little padding


def test_data_file_from_the_environment_and_clear_errors(tmp_path, monkeypatch):
  (tmp_path / "sub").mkdir()
  (tmp_path / "sub" / "a.txt").write_text("x")
  monkeypatch.setenv(ENV, str(tmp_path))
  assert data_file("", "sub/a.txt") == tmp_path / "sub" / "a.txt"
  assert data_file(str(tmp_path / "sub" / "a.txt"), "sub/a.txt") == tmp_path / "sub" / "a.txt"
  with pytest.raises(FileNotFoundError, match="sub/b.txt"):
    data_file("", "sub/b.txt")
  monkeypatch.delenv(ENV)
  with pytest.raises(FileNotFoundError, match=ENV):
    data_file(None, "sub/a.txt")
