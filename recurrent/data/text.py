"""A book as bytes: reading, 256-way byte encoding, a held-out split, random crops.

Shape legend: B batch, T time (bytes), N bytes in a split.

Text is encoded as its UTF-8 bytes, one token per byte (256 ids), as in seed
004's case-correction demo ("input/output encoding: 256-dimensional vector").
Id 0 (the NUL byte, absent from the books) pads batches, as in the seed.

Everything here is a pure function of its arguments: a training batch is
drawn from ``numpy.random.default_rng((seed, step))``, so the batch of a step
is the same in an uninterrupted and in a resumed run. The held-out split is
the book's last ``held_out_fraction`` of bytes (by position, no shuffling),
and training crops are drawn only from the part before it.

Case correction on bytes: ``lowercase_ascii`` lowers the 26 ASCII capitals
(bytes 65-90 -> 97-122) and leaves every other byte alone. Lowering a
non-ASCII character (É -> é) can change its UTF-8 length, which would break
the one-to-one alignment of input and target bytes; on bytes the task stays
aligned: input[t] is target[t] lowered. The book ``1661-0.txt`` uses curly
quotes and the em dash; ``ascii_typography`` maps them to ' " and -- (the
seed's ASCII text and its test sentence use straight quotes).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from recurrent.data import paths
from recurrent.data.files import read_text as read_checked

DATA_DIR_ENV = paths.ENV
SHERLOCK = "sherlock_holmes/1661-0.txt"   # relative to the data folder
PAD = 0                                   # the padding byte (NUL)
VOCAB_SIZE = 256                          # one token per byte value

_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                             "\u2014": "--"})


def resolve_path(path: str | os.PathLike | None, relative: str = SHERLOCK) -> Path:
  """``path`` itself when given (non-empty), else ``$RECURRENT_DATA_DIR/relative`` (failing when unset)."""
  return Path(path) if path else paths.data_file(None, relative)


def read_text(path: str | os.PathLike | None = None, relative: str = SHERLOCK) -> str:
  """The UTF-8 text of a file; a missing, empty, binary or non-UTF-8 file fails naming the path."""
  p = resolve_path(path, relative)
  if not p.is_file():
    raise FileNotFoundError(
        f"text data: expected the file {str(p)!r}; pass its path (config.task.path) or set "
        f"${DATA_DIR_ENV} to the folder holding {relative!r}")
  return read_checked(p, "a book as UTF-8 text")


def ascii_typography(text: str) -> str:
  """Curly quotes -> straight quotes, em dash -> '--'; every other character unchanged."""
  return text.translate(_TYPOGRAPHY)


def encode(text: str) -> np.ndarray:
  """Text -> its UTF-8 bytes as uint8 ids [N]."""
  return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def decode(ids, length: int | None = None) -> str:
  """Byte ids -> text; stops at ``length`` if given; bytes that are not valid UTF-8 become U+FFFD."""
  ids = np.asarray(ids)
  if ids.ndim != 1:
    raise ValueError(f"ids: expected one sequence [T], got shape {ids.shape}")
  if length is not None:
    ids = ids[:length]
  if ids.size and (ids.min() < 0 or ids.max() > 255):
    raise ValueError(f"ids: byte ids must be in [0, 255], got [{ids.min()}, {ids.max()}]")
  return bytes(ids.astype(np.uint8)).decode("utf-8", errors="replace")


def lowercase_ascii(ids) -> np.ndarray:
  """ASCII capitals A-Z (65-90) -> a-z (97-122); every other byte, non-ASCII included, unchanged."""
  ids = np.asarray(ids)
  return np.where((ids >= 65) & (ids <= 90), ids + 32, ids).astype(ids.dtype)


def split(data: np.ndarray, held_out_fraction: float) -> tuple[np.ndarray, np.ndarray]:
  """(train, held_out) by position: the held-out part is the last ``held_out_fraction`` of ``data``."""
  if not 0.0 < held_out_fraction < 1.0:
    raise ValueError(f"held_out_fraction: must be in (0, 1), got {held_out_fraction!r}")
  n_train = int(round(len(data) * (1.0 - held_out_fraction)))
  if n_train == 0 or n_train == len(data):
    raise ValueError(
        f"held_out_fraction: {held_out_fraction!r} of {len(data)} bytes leaves an empty split")
  return data[:n_train], data[n_train:]


def _check_lengths(min_len: int, max_len: int, n: int) -> None:
  if not 1 <= min_len <= max_len:
    raise ValueError(f"min_len, max_len: need 1 <= min_len <= max_len, got {min_len}, {max_len}")
  if max_len > n:
    raise ValueError(f"max_len: {max_len} is longer than the {n} bytes to crop from")


def pad_batch(seqs: list[np.ndarray], num_steps: int, batch_size: int | None = None):
  """Sequences -> (ids [B, T] int32 padded with PAD, lengths [B] int32).

  ``batch_size`` adds empty rows (length 0) up to B, so that the last batch
  of a split has the same static shape as the others.
  """
  B = len(seqs) if batch_size is None else batch_size
  if len(seqs) > B:
    raise ValueError(f"seqs: {len(seqs)} sequences do not fit a batch of {B}")
  ids_BT = np.full((B, num_steps), PAD, np.int32)
  lengths_B = np.zeros((B,), np.int32)
  for b, s in enumerate(seqs):
    if len(s) > num_steps:
      raise ValueError(f"seqs[{b}]: length {len(s)} exceeds num_steps={num_steps}")
    ids_BT[b, :len(s)] = s
    lengths_B[b] = len(s)
  return ids_BT, lengths_B


def random_crops(data: np.ndarray, seed: int, step: int, batch_size: int, min_len: int,
                 max_len: int):
  """B crops of uniform length in [min_len, max_len] at uniform positions, padded to T = max_len.

  A pure function of (seed, step). Returns (ids [B, T] int32, lengths [B] int32).
  """
  _check_lengths(min_len, max_len, len(data))
  rng = np.random.default_rng((seed, step))
  lengths = rng.integers(min_len, max_len + 1, size=batch_size)
  starts = rng.integers(0, len(data) - lengths + 1)          # crop inside the data
  return pad_batch([data[s:s + L] for s, L in zip(starts, lengths)], max_len)


def consecutive_crops(data: np.ndarray, seed: int, min_len: int, max_len: int) -> list[np.ndarray]:
  """``data`` cut into consecutive pieces of random length in [min_len, max_len] (the last may be
  shorter): every byte in exactly one piece, for an evaluation that covers a split once."""
  _check_lengths(min_len, max_len, len(data))
  rng = np.random.default_rng(seed)
  pieces, start = [], 0
  while start < len(data):
    L = int(rng.integers(min_len, max_len + 1))
    pieces.append(data[start:start + L])
    start += L
  return pieces


def steps_per_epoch(num_bytes: int, batch_size: int, min_len: int, max_len: int) -> int:
  """Steps whose crops hold, on average, as many bytes as the split: ceil(N / (B * mean length))."""
  mean_len = (min_len + max_len) / 2
  return max(1, int(np.ceil(num_bytes / (batch_size * mean_len))))
