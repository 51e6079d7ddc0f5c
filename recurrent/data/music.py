"""Polyphonic music as binary piano rolls: the four Boulanger-Lewandowski et al. (2012) data sets.

Each piece is a uint8 array [T, 88]: row t holds the notes sounding at step t,
column k is MIDI pitch k + 21 (the 88 piano keys A0..C8). The ``.mat`` files
(Gan et al. 2015's conversion of the original cPickles) hold the cell arrays
``traindata``, ``validdata`` and ``testdata`` of shape (1, N).

    rolls = load_piano_rolls(data_file(path, DATASETS["jsb"]))
    rolls["train"][0].shape        # (T_0, 88)

The model reads step t-1 and predicts step t; ``shift_right`` gives the
inputs (a silent frame, then every frame but the last), so each of the T
steps of a piece is predicted once, the first from the initial state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recurrent.data.files import load_mat

NUM_NOTES = 88
LOWEST_MIDI = 21  # column 0 is A0
SPLITS = ("train", "valid", "test")
DATASETS = {
    "jsb": "polyphonic_music/JSB_Chorales.mat",
    "nottingham": "polyphonic_music/Nottingham.mat",
    "musedata": "polyphonic_music/MuseData.mat",
    "piano": "polyphonic_music/Piano_midi.mat",
}


def check_roll(roll: np.ndarray, where: str) -> np.ndarray:
  """A piano roll [T, 88] of zeros and ones, as uint8; anything else raises naming ``where``."""
  roll = np.asarray(roll)
  if roll.ndim != 2 or roll.shape[1] != NUM_NOTES or roll.shape[0] < 1:
    raise ValueError(f"{where}: expected a piano roll [T >= 1, {NUM_NOTES}], got shape {roll.shape}")
  if not np.isin(roll, (0, 1)).all():
    raise ValueError(f"{where}: expected binary values, got {np.unique(roll)[:10]}")
  return roll.astype(np.uint8)


def load_piano_rolls(path: str | Path) -> dict[str, list[np.ndarray]]:
  """{'train'|'valid'|'test': [roll [T_i, 88] uint8]} from a Boulanger-Lewandowski ``.mat`` file."""
  mat = load_mat(path, "the cell arrays traindata, validdata and testdata of piano rolls")
  missing = [f"{split}data" for split in SPLITS if f"{split}data" not in mat]
  if missing:
    raise ValueError(f"{path}: expected the keys {missing}, found "
                     f"{sorted(k for k in mat if not k.startswith('__'))}")
  out = {}
  for split in SPLITS:
    key = f"{split}data"
    cells = mat[key]
    out[split] = [check_roll(cells.flat[i], f"{path}:{key}[{i}]") for i in range(cells.size)]
  return out


def shift_right(roll_TN: np.ndarray) -> np.ndarray:
  """Inputs for next-step prediction: [silence, roll[0], ..., roll[T-2]] -> [T, 88]."""
  return np.concatenate([np.zeros_like(roll_TN[:1]), roll_TN[:-1]], axis=0)


def pitches(roll_TN: np.ndarray) -> list[list[int]]:
  """The MIDI pitches sounding at each step (the inverse of ``from_pitches``)."""
  return [[int(k) + LOWEST_MIDI for k in np.flatnonzero(row)] for row in roll_TN]


def from_pitches(steps: list[list[int]]) -> np.ndarray:
  """A piano roll [T, 88] from lists of MIDI pitches in 21..108."""
  roll = np.zeros((len(steps), NUM_NOTES), np.uint8)
  for t, notes in enumerate(steps):
    for p in notes:
      if not LOWEST_MIDI <= p < LOWEST_MIDI + NUM_NOTES:
        raise ValueError(f"steps[{t}]: pitch {p} is outside the piano range 21..108")
      roll[t, p - LOWEST_MIDI] = 1
  return roll
