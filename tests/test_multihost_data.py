"""Per-process data, in one process: a task's slice of a batch against the same rows of its whole batch.

In a run of P processes, process p builds only rows [p B/P, (p+1) B/P) of
each global batch (``distributed.task_rows``). The reference for a slice is
the whole batch the task builds for one process, ``train_batch(step)``: the
slice must equal its rows exactly, padding length included, or the
processes would join arrays of different shapes. Tasks whose rows are drawn
jointly from one random stream have no ``rows`` parameter and are cut from
the whole batch instead.
"""

import numpy as np
import pytest

from configs import pos as pos_config
from configs import sentiment as sentiment_config
from configs import sine as sine_config
from configs import translation as translation_config
from recurrent.data import batching
from recurrent.data import conll
from recurrent.tasks import base, get_task, pos_tagging, sentiment as sentiment_task, translation
from recurrent.training import distributed

from test_conll import make_splits, write_files
from test_sentiment import write_fake_data
from test_stream_lm import config_for, write_corpus

SLICES = [slice(0, 2), slice(2, 4), slice(4, 8), slice(1, 3)]


def assert_rows_equal(task, step, rows):
  whole, part = task.train_batch(step), distributed.task_rows(task, step, rows)
  assert sorted(whole) == sorted(part)
  for k in whole:
    w, p = np.asarray(whole[k]), np.asarray(part[k])
    expected = w[rows] if w.ndim else w
    assert p.dtype == expected.dtype and p.shape == expected.shape, (k, p.shape, expected.shape)
    np.testing.assert_array_equal(p, expected, err_msg=k)


def test_pad_builds_the_rows_of_the_whole_batch_padded_to_its_length():
  rng = np.random.default_rng(0)
  seqs = [rng.integers(1, 9, size=(int(n), 3)) for n in rng.integers(1, 40, size=20)]
  idx = np.array([3, 17, -1, 0, 9, 12, 5, -1])
  for max_len in (None, 24):
    whole, lengths = batching.pad(seqs, idx, bucket=8, max_len=max_len, pad_value=-7)
    for rows in SLICES + [slice(2, 3)]:  # rows 2:3 hold only an empty row
      part, part_lengths = batching.pad(seqs, idx, bucket=8, max_len=max_len, pad_value=-7, rows=rows)
      np.testing.assert_array_equal(part, whole[rows])
      np.testing.assert_array_equal(part_lengths, lengths[rows])
  # The padded length is the whole batch's, not the slice's: rows 0:1 alone would pad shorter.
  short = batching.pad(seqs, idx, bucket=8, rows=slice(2, 3))[0]
  assert short.shape[1] == batching.pad(seqs, idx, bucket=8)[0].shape[1] > 0


def stream_lm(tmp_path):
  return get_task(config_for(write_corpus(tmp_path / "corpus")))


def sentiment(tmp_path):
  write_fake_data(tmp_path)
  config = sentiment_config.get_config("smoke")
  config.task.data_dir = str(tmp_path)
  return sentiment_task.build(config)


def pos(tmp_path):
  write_files(tmp_path / "data", conll.POS_FILES, make_splits(2, "pos"), "pos")
  config = pos_config.get_config("smoke")
  config.task.data_dir = str(tmp_path / "data")
  return pos_tagging.build(config)


def translation_task(tmp_path):
  lines = [f"I see {i}.\tJe vois {i}." for i in range(30)] + [
      f"Where is the cat number {i}?\tOù est le chat numéro {i}\u202f?" for i in range(30)]
  (tmp_path / "fra.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
  config = translation_config.get_config("smoke")
  config.task.data_path = str(tmp_path / "fra.txt")
  return translation.build(config)


@pytest.mark.parametrize("build", [lambda _: get_task(sine_config.get_config("smoke")), stream_lm,
                                   sentiment, pos, translation_task],
                         ids=["sine", "stream_lm", "sentiment", "pos", "translation"])
def test_tasks_that_build_their_rows_alone_build_the_rows_of_their_whole_batch(tmp_path, build):
  task = build(tmp_path)
  assert distributed.takes_rows(task.train_batch)
  B = np.shape(next(v for v in task.train_batch(0).values() if np.ndim(v)))[0]
  assert B >= 8
  for step in (0, 1, 7, 40):  # 40: a later epoch for the small data sets
    for rows in SLICES:
      assert_rows_equal(task, step, rows)


def test_a_task_without_rows_is_cut_from_its_whole_batch():
  calls = []

  def train_batch(step):  # as adding, copy memory, digits: rows drawn jointly from one stream
    calls.append(step)
    rng = np.random.default_rng(step)
    return {"x": rng.normal(size=(8, 5)), "reset": np.asarray(step == 0)}

  task = base.Task(init_params=None, loss_fn=None, train_batch=train_batch, eval_batches=None,
                   num_tokens=None)
  assert not distributed.takes_rows(task.train_batch)
  assert_rows_equal(task, 3, slice(2, 4))
  assert calls == [3, 3]


def test_a_slice_that_is_not_the_rows_of_the_whole_batch_fails_naming_the_leaf():
  seqs = [np.arange(1, n + 1) for n in (3, 30, 5, 4)]

  def train_batch(step, rows=None):  # wrong: pads the slice to its own longest sequence
    idx = np.arange(4)[rows or slice(None)]
    x, lengths = batching.pad(seqs, idx, bucket=4)
    return {"x": x, "lengths": lengths, "reset": np.asarray(step == 0)}

  task = base.Task(init_params=None, loss_fn=None, train_batch=train_batch, eval_batches=None,
                   num_tokens=None)
  rows = slice(2, 4)
  with pytest.raises(ValueError, match=r"task.train_batch\(0, rows=slice\(2, 4\)\)\['x'\]: "
                                       r"int64\[2, 8\] differs from rows 2:4 of the whole batch "
                                       r"\(int64\[2, 32\]\)"):
    distributed.check_rows(task, 0, rows, distributed.task_rows(task, 0, rows))
  distributed.check_rows(task, 0, slice(0, 4), distributed.task_rows(task, 0, slice(0, 4)))
