"""Corrupt copies of every loader's file (made here): each fails naming the file, the line or offset, and what it expected."""


import numpy as np
import pytest
import scipy.io

from recurrent.data import conll, files, music, sentiment, text, translation


def corrupt(path, how):
  """Damages a good file in place: a non-UTF-8 byte in line 2, NUL bytes (binary), or emptiness."""
  data = path.read_bytes()
  lines = data.split(b"\n")
  if how == "latin1":
    lines[1] = lines[1] + " caf\u00e9".encode("latin-1")
    path.write_bytes(b"\n".join(lines))
  elif how == "binary":
    path.write_bytes(lines[0] + b"\n" + bytes(range(0, 8)) * 8)
  elif how == "empty":
    path.write_bytes(b"")
  elif how == "blank":
    path.write_bytes(b"\n \n\t\n")


EXPECT = {"latin1": r":2: byte offset \d+ .*is not UTF-8", "binary": r":2: NUL byte at offset \d+",
          "empty": ": the file is empty", "blank": ": the file is empty"}
DAMAGES = list(EXPECT)


def pattern(path, how, what):
  """The error for damage ``how`` of ``path``: the file, the line or emptiness, then what was expected."""
  return f"{path}{EXPECT[how]}.*expected {what}"


@pytest.mark.parametrize("how", DAMAGES)
def test_translation_pairs(tmp_path, how):
  p = tmp_path / "fra.txt"
  p.write_text("Go.\tVa !\nHi.\tSalut !\nRun!\tCours !\n", encoding="utf-8")
  assert len(translation.read_pairs(p)) == 3
  corrupt(p, how)
  with pytest.raises(ValueError, match=pattern(p, how, "'English<TAB>French' lines")):
    translation.read_pairs(p)


@pytest.mark.parametrize("how", DAMAGES)
def test_sentiment_files(tmp_path, how):
  for name in sentiment.FILES.values():
    (tmp_path / name).write_text("Great phone.\t1\nAwful.\t0\nFine.\t1\n", encoding="utf-8")
  assert len(sentiment.load_sentences(tmp_path)) == 9
  bad = tmp_path / sentiment.FILES["imdb"]
  corrupt(bad, how)
  with pytest.raises(ValueError, match=pattern(bad, how, "'sentence<TAB>0|1' lines")):
    sentiment.load_sentences(tmp_path)


@pytest.mark.parametrize("how", DAMAGES)
def test_column_files(tmp_path, how):
  p = tmp_path / "train.conll"
  p.write_text("The\tDET\nend\tNOUN\n\nHi\tINTJ\n", encoding="utf-8")
  assert conll.read_columns(p, 2) == [[("The", "DET"), ("end", "NOUN")], [("Hi", "INTJ")]]
  corrupt(p, how)
  with pytest.raises(ValueError, match=pattern(p, how, "one token a line in 2 TAB-separated columns")):
    conll.read_columns(p, 2)


@pytest.mark.parametrize("how", DAMAGES)
def test_book_text(tmp_path, how):
  p = tmp_path / "book.txt"
  p.write_text("Chapter one.\nIt was a dark night.\nThe end.\n", encoding="utf-8")
  assert text.read_text(p).startswith("Chapter")
  corrupt(p, how)
  with pytest.raises(ValueError, match=pattern(p, how, "a book")):
    text.read_text(p)


def good_mat(path):
  rng = np.random.default_rng(0)
  scipy.io.savemat(path, {"traindata": _cells(rng, 3), "validdata": _cells(rng, 2),
                          "testdata": _cells(rng, 2)})


def _cells(rng, n):
  out = np.empty((1, n), dtype=object)
  for i in range(n):
    out[0, i] = (rng.random((5 + i, 88)) < 0.1).astype(np.float64)
  return out


@pytest.mark.parametrize("how", ["truncated", "random", "empty"])
def test_music_mat(tmp_path, how):
  p = tmp_path / "jsb.mat"
  good_mat(p)
  rolls = music.load_piano_rolls(p)
  assert [len(rolls[s]) for s in music.SPLITS] == [3, 2, 2] and rolls["train"][2].shape == (7, 88)
  data = p.read_bytes()
  damaged = {"truncated": data[:len(data) // 2], "random": np.random.default_rng(1).bytes(len(data)),
             "empty": b""}
  p.write_bytes(damaged[how])
  with pytest.raises(ValueError, match=f"{p}: (not a readable MATLAB .mat file|the file is empty).*"
                                       "expected the cell arrays traindata"):
    music.load_piano_rolls(p)


def test_read_text_reports_the_line_and_offset_exactly(tmp_path):
  p = tmp_path / "x.txt"
  p.write_bytes(b"ok\nfine\nbad \xff here\n")
  with pytest.raises(ValueError, match=rf"{p}:3: byte offset 12 \(b'\\xff he'\.\.\.\) is not UTF-8"):
    files.read_text(p, "text")
