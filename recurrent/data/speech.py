"""Spoken digits and background noise: connected-digit utterances and trigger-word clips.

Sources (see shared/data/README.md): the Free Spoken Digit Dataset
(``free_spoken_digit/recordings/{digit}_{speaker}_{take}.wav``, 8 kHz, 6
speakers x 10 digits x 50 takes; Jakobovski/free-spoken-digit-dataset, Zohar
Jackson and contributors, CC BY-SA 4.0) and the Speech Commands background
noise (``speech_commands_background_noise/*.wav``, 16 kHz, resampled to 8 kHz
here; Warden 2018, CC BY 4.0).

``load_corpus`` reads and checks every file before anything trains (a bad
clip fails naming its file, never mid-run), trims each digit's leading and
trailing silence by frame energy and scales it to a common RMS (the levels
of the speakers differ by 20 dB); each noise file is scaled to RMS 1, so the
very loud generated white and pink noise are no louder than the rest once a
signal-to-noise ratio is applied. Noise files are cut in two: the first 80%
of every file feeds training, the last 20% evaluation.

Every example is a pure function of a NumPy generator seeded from (seed,
step) by the caller: ``connected_digits`` joins 1-7 digit clips with random
gaps over noise at a random SNR; ``trigger_clip`` inserts non-overlapping
positive (the trigger digit) and negative (other digits) words into 5-10 s
of background and returns the word end times.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

import numpy as np

from recurrent.data import audio
from recurrent.data.paths import data_file

RATE = 8000
FSDD_DIR = "free_spoken_digit/recordings"
NOISE_DIR = "speech_commands_background_noise"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
SPEECH_RMS = 0.05       # every trimmed clip is scaled to this RMS
TRAIN_NOISE_FRACTION = 0.8
_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


@dataclasses.dataclass(frozen=True)
class Corpus:
  """Trimmed, level-normalised digit clips and unit-RMS noise (train and test parts)."""
  clips: tuple            # float32 arrays at RATE
  digits: np.ndarray      # [n] 0-9
  speakers: tuple         # [n] names
  takes: np.ndarray       # [n]
  noise_train: tuple      # float32 arrays, the first 80% of each noise file
  noise_test: tuple       # the last 20%
  noise_names: tuple


def trim_silence(x: np.ndarray, rate: int, threshold_db: float = -35.0, frame_ms: float = 10.0,
                 margin_ms: float = 20.0) -> np.ndarray:
  """The span from the first to the last 10 ms frame whose energy is within ``threshold_db`` of the loudest, plus a margin."""
  n = max(int(rate * frame_ms / 1000), 1)
  T = len(x) // n
  if T == 0:
    return x
  energy = (x[:T * n].reshape(T, n).astype(np.float64) ** 2).mean(1) + 1e-12
  loud = np.nonzero(10 * np.log10(energy / energy.max()) > threshold_db)[0]
  m = int(rate * margin_ms / 1000)
  return x[max(loud[0] * n - m, 0):min((loud[-1] + 1) * n + m, len(x))]


def rms(x: np.ndarray) -> float:
  return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def index_fsdd(folder: Path) -> list[tuple[Path, int, str, int]]:
  """(path, digit, speaker, take) of every recording; a name not like ``7_jackson_32.wav`` fails."""
  if not folder.is_dir():
    raise FileNotFoundError(f"data: expected the FSDD recordings folder {str(folder)!r}")
  out = []
  for p in sorted(folder.glob("*.wav")):
    m = _NAME.match(p.name)
    if not m:
      raise ValueError(f"{p}: not an FSDD file name; expected {{digit}}_{{speaker}}_{{take}}.wav")
    out.append((p, int(m.group(1)), m.group(2), int(m.group(3))))
  if not out:
    raise FileNotFoundError(f"data: no .wav files in the FSDD folder {str(folder)!r}")
  return out


@functools.lru_cache(maxsize=2)
def load_corpus(data_dir: str = "") -> Corpus:
  """Reads, checks, trims and normalises every FSDD clip and noise file (cached per folder)."""
  fsdd = data_file(data_dir, FSDD_DIR)
  clips, digits, speakers, takes = [], [], [], []
  for path, d, s, t in index_fsdd(fsdd):
    x, _ = audio.read_wav(path, RATE)
    x = trim_silence(x, RATE)
    level = rms(x)
    if len(x) < RATE // 20 or level < 1e-4:
      raise ValueError(f"{path}: the recording is silent or shorter than 50 ms after trimming")
    clips.append((x * (SPEECH_RMS / level)).astype(np.float32))
    digits.append(d)
    speakers.append(s)
    takes.append(t)
  noise_dir = data_file(data_dir, NOISE_DIR)
  names, train, test = [], [], []
  for path in sorted(noise_dir.glob("*.wav")):
    x, _ = audio.read_wav(path, RATE)
    level = rms(x)
    if len(x) < 10 * RATE or level < 1e-5:
      raise ValueError(f"{path}: a background-noise file must hold at least 10 s of sound")
    x = (x / level).astype(np.float32)
    cut = int(len(x) * TRAIN_NOISE_FRACTION)
    names.append(path.stem)
    train.append(x[:cut])
    test.append(x[cut:])
  if not names:
    raise FileNotFoundError(f"data: no .wav files in the noise folder {str(noise_dir)!r}")
  return Corpus(tuple(clips), np.array(digits), tuple(speakers), np.array(takes), tuple(train),
                tuple(test), tuple(names))


def split_indices(corpus: Corpus, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) clip indices: 'usual' holds out takes 0-4; 'speaker=NAME' holds out a speaker."""
  takes = corpus.takes
  if split == "usual":
    test = takes < 5
  elif split.startswith("speaker="):
    name = split.split("=", 1)[1]
    if name not in SPEAKERS:
      raise ValueError(f"split: unknown speaker {name!r}; valid speakers are {list(SPEAKERS)}")
    test = np.array([s == name for s in corpus.speakers])
  else:
    raise ValueError(f"split: must be 'usual' or 'speaker=NAME', got {split!r}")
  return np.nonzero(~test)[0], np.nonzero(test)[0]


def noise_crop(rng: np.random.Generator, noises: tuple, n: int) -> np.ndarray:
  """``n`` samples of one noise file, from a random file and offset (looped if too short)."""
  x = noises[rng.integers(len(noises))]
  if len(x) < n:
    x = np.tile(x, -(-n // len(x)))
  s = rng.integers(len(x) - n + 1)
  return x[s:s + n]


def connected_digits(rng: np.random.Generator, corpus: Corpus, pool: np.ndarray, noises: tuple,
                     max_samples: int, min_digits: int = 1, max_digits: int = 7,
                     max_gap_s: float = 0.3, snr_db: tuple = (5.0, 30.0)) -> tuple[np.ndarray, list]:
  """(waveform of at most ``max_samples``, digits): clips from ``pool`` with random gaps, over noise.

  Digits that would not fit in ``max_samples`` are dropped from the end (at
  least one is kept: the first clip is cut to fit, which FSDD never needs at
  the configured lengths).
  """
  n = int(rng.integers(min_digits, max_digits + 1))
  picks = rng.choice(pool, n)
  gaps = rng.uniform(0.0, max_gap_s, n + 1)
  pieces, digits, pos = [], [], 0
  for i, k in enumerate(picks):
    gap = int(gaps[i] * RATE)
    clip = corpus.clips[k]
    if pos + gap + len(clip) > max_samples and digits:
      break
    pieces.append((pos + gap, clip[:max_samples - pos - gap]))
    digits.append(int(corpus.digits[k]))
    pos += gap + len(clip)
  total = min(pos + int(gaps[-1] * RATE), max_samples)
  speech = np.zeros(total, np.float32)
  for start, clip in pieces:
    speech[start:start + len(clip)] += clip
  snr = rng.uniform(*snr_db)
  noise = noise_crop(rng, noises, total) * (SPEECH_RMS * 10 ** (-snr / 20))
  gain = 10 ** (rng.uniform(-6.0, 6.0) / 20)
  return ((speech + noise) * gain).astype(np.float32), digits


def trigger_clip(rng: np.random.Generator, corpus: Corpus, pool: np.ndarray, noises: tuple,
                 trigger: int, seconds: tuple = (5.0, 10.0), max_positives: int = 3,
                 max_negatives: int = 3, snr_db: tuple = (5.0, 30.0), words: bool = True,
                 min_trigger_gap_s: float = 0.0) -> tuple[np.ndarray, list, list]:
  """(waveform, end samples of the positives, end samples of the negatives) of one clip.

  Background: a random crop of 5-10 s. Then, when ``words``, 0..max_positives
  clips of the ``trigger`` digit and 0..max_negatives of the other digits,
  each at a random free position (no overlaps, 100 ms apart; the ends of two
  trigger words at least ``min_trigger_gap_s`` apart, so that their target
  windows and detections stay separate).
  """
  n = int(rng.uniform(*seconds) * RATE)
  snr = rng.uniform(*snr_db)
  x = noise_crop(rng, noises, n) * (SPEECH_RMS * 10 ** (-snr / 20))
  x = x.astype(np.float32)
  ends_pos, ends_neg, taken = [], [], []
  if words:
    is_trigger = corpus.digits[pool] == trigger
    positives, negatives = pool[is_trigger], pool[~is_trigger]
    kinds = [True] * int(rng.integers(0, max_positives + 1)) + \
            [False] * int(rng.integers(0, max_negatives + 1))
    rng.shuffle(kinds)
    sep = RATE // 10
    for positive in kinds:
      k = rng.choice(positives if positive else negatives)
      clip = corpus.clips[k] * 10 ** (rng.uniform(-3.0, 3.0) / 20)
      for _ in range(20):  # a free slot; skip the word when none is found
        s = int(rng.integers(0, n - len(clip) + 1))
        free = all(s + len(clip) + sep <= a or s >= b + sep for a, b in taken)
        if positive:
          free &= all(abs(s + len(clip) - e) >= min_trigger_gap_s * RATE for e in ends_pos)
        if free:
          taken.append((s, s + len(clip)))
          x[s:s + len(clip)] += clip
          (ends_pos if positive else ends_neg).append(s + len(clip))
          break
  return x, sorted(ends_pos), sorted(ends_neg)


def pad_batch(waves: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
  """([B, length] zero-padded float32, [B] lengths)."""
  out = np.zeros((len(waves), length), np.float32)
  for i, w in enumerate(waves):
    out[i, :len(w)] = w[:length]
  return out, np.array([min(len(w), length) for w in waves], np.int32)
