"""Canvases of MNIST digits with captions that name them in reading order and say where they are.

    spec = CanvasSpec(rows=2, cols=2)             # a 56 x 56 canvas of 2 x 2 cells of 28 px
    c = make_canvas(np.random.default_rng([seed, step]), images, labels, spec)
    c.image, c.words   # uint8 [56, 56]; ['seven', 'top', 'left', 'three', 'bottom', 'right']

Layout: the canvas is a grid of ``rows x cols`` cells of ``cell`` pixels.
A canvas holds n digits, n uniform in [min_digits, max_digits], in n
distinct cells drawn at random. Each digit is an MNIST image warped by

    input = M (output - centre) + (13.5, 13.5),   M = R(-theta) / s

(``scipy.ndimage.affine_transform``, bilinear, zero outside): scale s
uniform in [scale_min, scale_max], rotation theta uniform in
[-max_rotation, max_rotation] degrees (positive = counter-clockwise on the
screen), centred at the cell's centre plus a shift uniform in
+-(cell - 20 s) / 2 on each axis, so that the 20 x 20 box that holds an
MNIST digit's ink stays in its cell (before the turn: the corners of a
turned box may reach a pixel or two into a neighbour; digits' ink is rarely
in the corners). Overlapping strokes take the maximum.

Caption: the digits in reading order (cells row by row, top to bottom, left
to right), each as its word followed by its place: the row word (top,
bottom; or top, middle, bottom; none for one row) and the column word (left,
right; or left, middle, right; none for one column); the middle cell of a
3 x 3 grid is "centre". Example, 2 x 2: "seven top left three bottom right".

Everything is a pure function of the NumPy generator given (in the tasks,
``default_rng([seed, step])``) and of the digit pool, so the training
canvases come from the training digits and the held-out ones from the test
digits only.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import scipy.ndimage

from recurrent.checks import check_int

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PLACE_WORDS = ("top", "middle", "bottom", "left", "right", "centre")
SPECIALS = ("<pad>", "<bos>", "<eos>")  # ids 0, 1, 2 = recurrent.seq2seq PAD, BOS, EOS
VOCAB = SPECIALS + DIGIT_WORDS + PLACE_WORDS
WORD_ID = {w: i for i, w in enumerate(VOCAB)}
INK = 20  # MNIST digits are size-normalised into a 20 x 20 box centred in 28 x 28


@dataclasses.dataclass(frozen=True)
class CanvasSpec:
  rows: int = 2                # grid cells per column
  cols: int = 2                # grid cells per row
  cell: int = 28               # cell size in pixels
  min_digits: int = 1
  max_digits: int = 3
  scale_min: float = 0.8
  scale_max: float = 1.2
  max_rotation: float = 15.0   # degrees

  def __post_init__(self):
    for name in ("rows", "cols", "cell", "min_digits", "max_digits"):
      check_int(f"task.{name}", getattr(self, name))
    if self.rows > 3 or self.cols > 3:
      raise ValueError(f"task.rows, task.cols: at most 3 each (the place words are top/middle/"
                       f"bottom and left/middle/right), got {self.rows} x {self.cols}")
    if not self.min_digits <= self.max_digits <= self.rows * self.cols:
      raise ValueError(f"task.min_digits, task.max_digits: need 1 <= min_digits <= max_digits <= "
                       f"rows * cols = {self.rows * self.cols} (one digit per cell), got "
                       f"{self.min_digits} and {self.max_digits}")
    if not 0 < self.scale_min <= self.scale_max or self.scale_max * INK > self.cell:
      raise ValueError(f"task.scale_min, task.scale_max: need 0 < scale_min <= scale_max <= "
                       f"cell / {INK} = {self.cell / INK:g} (a digit's ink must fit in its cell), "
                       f"got {self.scale_min} and {self.scale_max}")
    if not 0 <= self.max_rotation <= 45:
      raise ValueError(f"task.max_rotation: must be in [0, 45] degrees (small rotations: a 6 "
                       f"turned far becomes a 9), got {self.max_rotation}")

  @property
  def shape(self) -> tuple[int, int]:
    return self.rows * self.cell, self.cols * self.cell

  @property
  def max_words(self) -> int:
    """The longest caption in words."""
    return self.max_digits * (1 + (self.rows > 1) + (self.cols > 1))


class Canvas(NamedTuple):
  image: np.ndarray        # uint8 [H, W]
  words: list[str]         # the caption
  labels: list[int]        # the digits, in reading order
  cells: list[int]         # their cells (row-major index), in reading order
  centres: list[tuple]     # their centres (row, col) in pixels


def place_words(spec: CanvasSpec, cell: int) -> list[str]:
  """The place of grid cell ``cell`` (row-major) in words."""
  r, c = divmod(cell, spec.cols)
  rows = {1: (), 2: ("top", "bottom"), 3: ("top", "middle", "bottom")}[spec.rows]
  cols = {1: (), 2: ("left", "right"), 3: ("left", "middle", "right")}[spec.cols]
  words = ([rows[r]] if rows else []) + ([cols[c]] if cols else [])
  return ["centre"] if words == ["middle", "middle"] else words


def caption(spec: CanvasSpec, labels: list[int], cells: list[int]) -> list[str]:
  """The caption of digits ``labels`` in ``cells``: reading order, each digit then its place."""
  words = []
  for cell, d in sorted(zip(cells, labels)):
    words += [DIGIT_WORDS[d]] + place_words(spec, cell)
  return words


def warp(digit_28: np.ndarray, shape: tuple[int, int], centre: tuple[float, float], scale: float,
         degrees: float) -> np.ndarray:
  """The 28 x 28 ``digit`` scaled, rotated and centred at ``centre`` on a zero float canvas of ``shape``."""
  t = np.deg2rad(degrees)
  # (row, col) coordinates with rows pointing down: a counter-clockwise turn on the screen
  # maps an offset (dr, dc) to F (dr, dc) = (cos t dr - sin t dc, sin t dr + cos t dc);
  # output = s F (input - centre_in) + centre, so input = F^T (output - centre) / s + centre_in.
  F = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
  M = F.T / scale
  c_out = np.asarray(centre, np.float64)
  offset = np.array([13.5, 13.5]) - M @ c_out
  return scipy.ndimage.affine_transform(digit_28.astype(np.float32), M, offset, output_shape=shape,
                                        order=1, mode="constant", cval=0.0)


def compose(spec: CanvasSpec, digits: list[np.ndarray], centres: list, scales: list,
            degrees: list) -> np.ndarray:
  """The uint8 canvas of the warped ``digits`` (strokes that overlap take the maximum)."""
  out = np.zeros(spec.shape, np.float32)
  for d, c, s, a in zip(digits, centres, scales, degrees):
    out = np.maximum(out, warp(d, spec.shape, c, s, a))
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def make_canvas(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray,
                spec: CanvasSpec) -> Canvas:
  """One canvas and its caption, drawn by ``rng`` from the digit pool (``images`` [N, 28, 28], ``labels`` [N])."""
  n = int(rng.integers(spec.min_digits, spec.max_digits + 1))
  cells = sorted(int(c) for c in rng.choice(spec.rows * spec.cols, n, replace=False))
  idx = rng.integers(len(images), size=n)
  scales = rng.uniform(spec.scale_min, spec.scale_max, n)
  degrees = rng.uniform(-spec.max_rotation, spec.max_rotation, n)
  centres = []
  for cell, s in zip(cells, scales):
    r, c = divmod(cell, spec.cols)
    room = (spec.cell - INK * s) / 2
    dr, dc = rng.uniform(-room, room, 2)
    centres.append(((r + 0.5) * spec.cell - 0.5 + dr, (c + 0.5) * spec.cell - 0.5 + dc))
  image = compose(spec, [images[i] for i in idx], centres, list(scales), list(degrees))
  ds = [int(labels[i]) for i in idx]
  return Canvas(image, caption(spec, ds, cells), ds, cells, centres)


def make_batch(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray,
               spec: CanvasSpec, n: int) -> dict:
  """``n`` canvases as arrays: ``src`` uint8 [n, H, W]; ``tgt_in``, ``tgt_out`` [n, T]; ``tgt_len`` [n].

  T = ``spec.max_words`` + 1; ``tgt_in`` = BOS w_1 .. w_L, ``tgt_out`` = w_1 .. w_L EOS
  (ids of ``VOCAB``), ``tgt_len`` = L + 1. Also ``digits`` and ``cells`` [n, max_digits]:
  each canvas's digits and their cells in reading order (-1 after the last).
  """
  T = spec.max_words + 1
  src = np.zeros((n,) + spec.shape, np.uint8)
  tgt_in = np.zeros((n, T), np.int32)
  tgt_out = np.zeros((n, T), np.int32)
  tgt_len = np.zeros((n,), np.int32)
  digits = np.full((n, spec.max_digits), -1, np.int32)
  cells = np.full((n, spec.max_digits), -1, np.int32)
  for i in range(n):
    c = make_canvas(rng, images, labels, spec)
    ids = [WORD_ID[w] for w in c.words]
    src[i] = c.image
    tgt_in[i, :len(ids) + 1] = [WORD_ID["<bos>"]] + ids
    tgt_out[i, :len(ids) + 1] = ids + [WORD_ID["<eos>"]]
    tgt_len[i] = len(ids) + 1
    digits[i, :len(c.labels)] = c.labels
    cells[i, :len(c.cells)] = c.cells
  return {"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out, "tgt_len": tgt_len, "digits": digits,
          "cells": cells}


def words_of(ids, length=None) -> list[str]:
  """The words of token ids up to (not including) EOS or ``length``; PAD and BOS are skipped."""
  out = []
  for v in list(ids)[:None if length is None else int(length)]:
    v = int(v)
    if v == WORD_ID["<eos>"]:
      break
    if v >= len(SPECIALS) and v < len(VOCAB):
      out.append(VOCAB[v])
  return out


__all__ = ["Canvas", "CanvasSpec", "DIGIT_WORDS", "VOCAB", "WORD_ID", "caption", "compose",
           "make_batch", "make_canvas", "place_words", "warp", "words_of"]
