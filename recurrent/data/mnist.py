"""MNIST from the original IDX files (LeCun, Cortes & Burges; CC BY-SA 3.0).

    images, labels = load(data_dir, "train")   # uint8 [60000, 28, 28], uint8 [60000]

Files (gzipped as distributed, or already gunzipped) under ``mnist/`` of the
data folder: ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``.

IDX format: a big-endian 32-bit magic number (0x00000803 for images,
0x00000801 for labels: two zero bytes, 0x08 = unsigned byte, then the number
of dimensions), one big-endian 32-bit size per dimension, then the uint8
data in row-major order. A file that breaks any of this (not gzip, wrong
magic, short data, trailing bytes, labels > 9, image and label counts that
differ) fails naming the file and what was expected.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from recurrent.data.paths import data_file

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
MAGIC = {3: 0x00000803, 1: 0x00000801}


def read_idx(path: str | os.PathLike, ndim: int) -> np.ndarray:
  """The uint8 array of one IDX file (gzipped or not) with ``ndim`` dimensions."""
  path = Path(path)
  what = f"an IDX file of {ndim} dimension(s) (magic 0x{MAGIC[ndim]:08x})"
  raw = path.read_bytes()
  if raw[:2] == b"\x1f\x8b":
    try:
      raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
      raise ValueError(f"{path}: a corrupt or truncated gzip file ({e}); expected {what}") from None
  if len(raw) < 4 + 4 * ndim:
    raise ValueError(f"{path}: {len(raw)} bytes, too short for the header; expected {what}")
  magic = int.from_bytes(raw[:4], "big")
  if magic != MAGIC[ndim]:
    raise ValueError(f"{path}: magic number 0x{magic:08x}; expected {what}")
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  offset = 4 + 4 * ndim
  n = int(np.prod(shape))
  if len(raw) - offset != n:
    raise ValueError(f"{path}: header says shape {shape} ({n} bytes of data), the file has "
                     f"{len(raw) - offset}; expected {what}")
  return np.frombuffer(raw, np.uint8, offset=offset).reshape(shape)


def _find(data_dir: str, name: str) -> Path:
  """``mnist/NAME.gz`` (as distributed) or ``mnist/NAME`` under the data folder."""
  try:
    return data_file(data_dir, f"mnist/{name}.gz")
  except FileNotFoundError:
    try:
      return data_file(data_dir, f"mnist/{name}")
    except FileNotFoundError:
      pass
    raise


@functools.lru_cache(maxsize=4)
def load(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 28, 28], labels uint8 [N]) of ``split`` 'train' or 'test'; checked."""
  if split not in FILES:
    raise ValueError(f"split: must be one of {sorted(FILES)}, got {split!r}")
  img_path, lab_path = (_find(data_dir, n) for n in FILES[split])
  images, labels = read_idx(img_path, 3), read_idx(lab_path, 1)
  if images.shape[1:] != (28, 28):
    raise ValueError(f"{img_path}: images of shape {images.shape[1:]}; expected 28 x 28")
  if len(images) != len(labels):
    raise ValueError(f"{img_path}, {lab_path}: {len(images)} images but {len(labels)} labels; "
                     "expected one label per image")
  if len(labels) == 0:
    raise ValueError(f"{lab_path}: no labels; expected at least one digit")
  if labels.max() > 9:
    raise ValueError(f"{lab_path}: label {int(labels.max())}; expected digits 0-9")
  return images, labels


__all__ = ["FILES", "load", "read_idx"]
