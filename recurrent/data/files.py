"""Reading data files so that a bad one fails naming itself: the path, the line or byte offset, what was expected.

    text = read_text(path, "'sentence<TAB>0|1' lines")   # UTF-8, non-empty, no NUL bytes
    mat = load_mat(path, "the piano rolls of Boulanger-Lewandowski et al.")

Every loader in ``recurrent.data`` reads through these, so a truncated,
binary or empty file gives one kind of message: ``PATH:LINE: byte offset N
...; expected WHAT``. An empty file (or one of only whitespace) is an error,
never an empty data set.
"""

from __future__ import annotations

import os
from pathlib import Path


def _line_of(data: bytes, offset: int) -> int:
  return data.count(b"\n", 0, offset) + 1


def read_text(path: str | os.PathLike, what: str) -> str:
  """The UTF-8 text of ``path``; an empty file, a byte that is not UTF-8 or a NUL byte raise ValueError."""
  path = Path(path)
  data = path.read_bytes()
  if not data.strip():
    raise ValueError(f"{path}: the file is empty; expected {what}")
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(
        f"{path}:{_line_of(data, e.start)}: byte offset {e.start} ({data[e.start:e.start + 4]!r}...) "
        f"is not UTF-8 ({e.reason}); expected {what} in a UTF-8 text file") from None
  nul = data.find(b"\x00")
  if nul >= 0:
    raise ValueError(f"{path}:{_line_of(data, nul)}: NUL byte at offset {nul} (a binary file?); "
                     f"expected {what} in a UTF-8 text file")
  return text


def load_mat(path: str | os.PathLike, what: str) -> dict:
  """``scipy.io.loadmat(path)``; a file scipy cannot read raises ValueError naming it."""
  import scipy.io  # only this loader needs scipy

  path = Path(path)
  if path.is_file() and path.stat().st_size == 0:
    raise ValueError(f"{path}: the file is empty; expected {what} (a MATLAB .mat file)")
  try:
    return scipy.io.loadmat(str(path))
  except (ValueError, TypeError, OSError, EOFError, NotImplementedError, KeyError) as e:
    raise ValueError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e}); "
                     f"expected {what}") from e
