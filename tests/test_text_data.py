"""The byte-level text pipeline on small made-up text: encodings, splits, crops, padding, windows."""

import numpy as np
import pytest

from recurrent.data import text

BOOK = ("\u201cIt\u2019s all clear,\u201d he whispered. \u201cHave you the chisel?\u201d\n"
        "Caf\u00e9 \u00c9MILE \u2014 \u00a35 for Mr. Holmes.\n")


def python_lower_ascii(s: str) -> str:
  return "".join(c.lower() if "A" <= c <= "Z" else c for c in s)


def test_read_text_by_path_and_by_env(tmp_path, monkeypatch):
  f = tmp_path / "sherlock_holmes" / "1661-0.txt"
  f.parent.mkdir()
  f.write_text(BOOK, encoding="utf-8")
  assert text.read_text(f) == BOOK
  monkeypatch.setenv(text.DATA_DIR_ENV, str(tmp_path))
  assert text.read_text() == BOOK
  assert text.read_text("") == BOOK          # an empty config field means the default


def test_missing_file_names_the_file(tmp_path, monkeypatch):
  monkeypatch.setenv(text.DATA_DIR_ENV, str(tmp_path))
  with pytest.raises(FileNotFoundError, match=r"sherlock_holmes/1661-0\.txt"):
    text.read_text()
  with pytest.raises(FileNotFoundError, match="nope.txt"):
    text.read_text(tmp_path / "nope.txt")


def test_encode_decode_round_trip_and_bytes():
  ids = text.encode(BOOK)
  assert ids.dtype == np.uint8 and len(ids) == len(BOOK.encode("utf-8")) > len(BOOK)
  assert text.decode(ids) == BOOK
  assert list(text.encode("A\u00e9")) == [65, 0xC3, 0xA9]
  assert text.decode(np.array([104, 105, 0, 0]), length=2) == "hi"
  assert text.decode(np.array([0xC3])) == "\ufffd"          # a cut multi-byte character
  with pytest.raises(ValueError, match="ids: byte ids must be in"):
    text.decode(np.array([300]))


def test_ascii_typography():
  out = text.ascii_typography(BOOK)
  assert out.startswith("\"It's all clear,\" he whispered.")
  assert "-- \u00a35" in out and "Caf\u00e9" in out            # other non-ASCII characters stay
  assert not set(out) & set("\u2018\u2019\u201c\u201d\u2014")


def test_lowercase_ascii_is_aligned_and_matches_python():
  ids = text.encode(BOOK)
  low = text.lowercase_ascii(ids)
  assert low.shape == ids.shape and low.dtype == ids.dtype
  assert text.decode(low) == python_lower_ascii(BOOK)          # \u00c9 stays: lowering it is not 1:1 on bytes
  changed = low != ids
  assert changed.sum() == sum("A" <= c <= "Z" for c in BOOK)
  np.testing.assert_array_equal(ids[~changed], low[~changed])


def test_split_by_position_is_disjoint_and_covers():
  data = np.arange(100, dtype=np.uint8)
  train, held = text.split(data, 0.1)
  np.testing.assert_array_equal(np.concatenate([train, held]), data)
  assert len(held) == 10 and train[-1] < held[0]
  for bad in (0.0, 1.0, 0.001):
    with pytest.raises(ValueError, match="held_out_fraction"):
      text.split(data, bad)


def test_pad_batch():
  ids, lengths = text.pad_batch([np.array([5, 6, 7]), np.array([9])], 4, batch_size=3)
  np.testing.assert_array_equal(ids, [[5, 6, 7, 0], [9, 0, 0, 0], [0, 0, 0, 0]])
  np.testing.assert_array_equal(lengths, [3, 1, 0])
  with pytest.raises(ValueError, match=r"seqs\[0\]: length 3 exceeds num_steps=2"):
    text.pad_batch([np.array([5, 6, 7])], 2)


def test_random_crops_are_pure_contiguous_and_padded():
  data = np.arange(1, 201, dtype=np.uint8)   # distinct bytes: a crop's values give its position
  ids, lengths = text.random_crops(data, seed=3, step=7, batch_size=16, min_len=5, max_len=12)
  ids2, lengths2 = text.random_crops(data, seed=3, step=7, batch_size=16, min_len=5, max_len=12)
  np.testing.assert_array_equal(ids, ids2)
  np.testing.assert_array_equal(lengths, lengths2)
  ids3, _ = text.random_crops(data, seed=3, step=8, batch_size=16, min_len=5, max_len=12)
  assert not np.array_equal(ids, ids3)
  assert ids.shape == (16, 12) and ids.dtype == np.int32
  assert lengths.min() >= 5 and lengths.max() <= 12
  for row, L in zip(ids, lengths):
    start = row[0] - 1
    np.testing.assert_array_equal(row[:L], data[start:start + L])
    assert (row[L:] == text.PAD).all()


def test_random_crops_cover_both_ends_and_all_lengths():
  data = np.arange(1, 31, dtype=np.uint8)
  starts, ends, seen = set(), set(), set()
  for step in range(300):
    ids, lengths = text.random_crops(data, 0, step, 8, 2, 4)
    seen.update(lengths.tolist())
    starts.update(ids[:, 0].tolist())
    ends.update(ids[np.arange(8), lengths - 1].tolist())
  assert seen == {2, 3, 4} and 1 in starts and 30 in ends and max(starts) <= 29


def test_consecutive_crops_partition_the_data():
  data = np.arange(1, 101, dtype=np.uint8)
  pieces = text.consecutive_crops(data, seed=0, min_len=3, max_len=9)
  np.testing.assert_array_equal(np.concatenate(pieces), data)
  assert all(3 <= len(p) <= 9 for p in pieces[:-1]) and 1 <= len(pieces[-1]) <= 9
  with pytest.raises(ValueError, match="min_len, max_len"):
    text.consecutive_crops(data, 0, 9, 3)


def test_steps_per_epoch():
  assert text.steps_per_epoch(1000, 4, 10, 30) == 13       # ceil(1000 / (4 * 20))
  assert text.steps_per_epoch(10, 32, 10, 100) == 1
