"""Sentence pairs for translation: the Tatoeba English-French file, tokenised at word level.

    pairs = read_pairs(path)                        # [(english, french)], raw strings
    data = prepare(pairs, source="fra", max_words=10, vocab_size=6000, test_percent=5)
    data.src_vocab.encode(tokens) ...

The file (``eng_fra_tatoeba/fra.txt``, one ``English<TAB>French`` pair a
line) comes from ManyThings.org (manythings.org/anki), built from the
Tatoeba Project (tatoeba.org); license CC BY 2.0 FR, attribution required.

Normalisation: U+202F, U+00A0 and U+2009 (the French spacing before ``!?:;``
and inside numbers) become plain spaces, the text is lowercased, and tokens
are runs of word characters or single punctuation marks (``l'alcool`` ->
``l ' alcool``). Pairs with more than ``max_words`` tokens on either side are
dropped. The test split is chosen by a hash of the normalised *source*
sentence, so it is the same on every machine and a source sentence with
several translations falls wholly on one side. Vocabularies are built from
the training split only (the ``vocab_size`` most frequent tokens, ties broken
by the string); other tokens map to <unk>.
"""

from __future__ import annotations

import dataclasses
import os
import re
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from recurrent.data.files import read_text
from recurrent.data.vocab import Vocab

ENV = "RECURRENT_DATA_DIR"
RELPATH = "eng_fra_tatoeba/fra.txt"
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")  # ids 0..3: PAD, BOS, EOS as in recurrent.seq2seq
UNK_ID = 3
_SPACES = {"\u202f": " ", "\u00a0": " ", "\u2009": " "}
_TOKEN = re.compile(r"\w+|[^\w\s]")


def data_path(path: str | os.PathLike | None = None) -> Path:
  """``path`` (the file or a data folder), or ``$RECURRENT_DATA_DIR/eng_fra_tatoeba/fra.txt``."""
  if not path:
    if not os.environ.get(ENV):
      raise FileNotFoundError(f"data: no path given and ${ENV} is not set; expected the file "
                              f"{RELPATH!r} under a data folder (set {ENV} or task.data_path)")
    path = os.environ[ENV]
  p = Path(path)
  if p.is_dir():
    p = p / RELPATH
  if not p.is_file():
    raise FileNotFoundError(f"data: expected the English-French pairs file {str(p)!r} "
                            f"({RELPATH!r} of shared/data; see its README)")
  return p


def read_pairs(path: str | os.PathLike | None = None) -> list[tuple[str, str]]:
  """[(english, french)] from a tab-separated file of two columns."""
  p = data_path(path)
  lines = read_text(p, "'English<TAB>French' lines").split("\n")
  if lines[-1] == "":
    lines.pop()  # the newline that ends the last line
  pairs = []
  for i, line in enumerate(lines, 1):
    cols = line.rstrip("\r").split("\t")
    if len(cols) < 2:
      raise ValueError(f"{p}:{i}: expected 'English<TAB>French', got {line[:60]!r}")
    pairs.append((cols[0], cols[1]))
  return pairs


def normalise(text: str) -> str:
  """Special spaces to spaces, then lowercase."""
  for a, b in _SPACES.items():
    text = text.replace(a, b)
  return text.lower()


def tokenize(text: str) -> list[str]:
  """Word tokens of the normalised text: runs of word characters, or one punctuation mark."""
  return _TOKEN.findall(normalise(text))


@dataclasses.dataclass
class TranslationData:
  """Token lists of both splits and the two vocabularies (source first)."""

  train_src: list
  train_tgt: list
  test_src: list
  test_tgt: list
  src_vocab: Vocab
  tgt_vocab: Vocab


def is_test(source_sentence: Sequence[str], test_percent: float) -> bool:
  """The deterministic split: crc32 of the normalised source, in per-mille."""
  return zlib.crc32(" ".join(source_sentence).encode("utf-8")) % 1000 < 10 * test_percent


def prepare(pairs: Sequence[tuple[str, str]], source: str = "fra", max_words: int = 10,
            vocab_size: int = 6000, test_percent: float = 5.0) -> TranslationData:
  """Tokenises, filters by length, splits and builds the vocabularies (module docstring)."""
  if source not in ("fra", "eng"):
    raise ValueError(f"source: must be 'fra' (French to English) or 'eng', got {source!r}")
  if max_words < 1:
    raise ValueError(f"max_words: must be >= 1, got {max_words}")
  if not 0 < test_percent < 100:
    raise ValueError(f"test_percent: must be in (0, 100), got {test_percent}")
  if vocab_size <= len(SPECIALS):
    raise ValueError(f"vocab_size: must be > {len(SPECIALS)} (the specials), got {vocab_size}")
  splits = {False: ([], []), True: ([], [])}
  for eng, fra in pairs:
    src, tgt = (tokenize(fra), tokenize(eng)) if source == "fra" else (tokenize(eng), tokenize(fra))
    if not src or not tgt or len(src) > max_words or len(tgt) > max_words:
      continue
    s, t = splits[is_test(src, test_percent)]
    s.append(src)
    t.append(tgt)
  (train_src, train_tgt), (test_src, test_tgt) = splits[False], splits[True]
  if not train_src or not test_src:
    raise ValueError(f"pairs: {len(train_src)} training and {len(test_src)} test pairs remain "
                     f"after the length filter (max_words={max_words}); both must be non-empty")
  return TranslationData(train_src, train_tgt, test_src, test_tgt,
                         Vocab.build(train_src, specials=SPECIALS, max_size=vocab_size),
                         Vocab.build(train_tgt, specials=SPECIALS, max_size=vocab_size))


def to_arrays(src: Sequence[Sequence[str]], tgt: Sequence[Sequence[str]], src_vocab: Vocab,
              tgt_vocab: Vocab, max_words: int) -> dict:
  """Fixed-shape padded id arrays: src [N, S], tgt_in/tgt_out [N, S + 1] (S = max_words), lengths."""
  N, S = len(src), max_words
  out = {"src": np.zeros((N, S), np.int32), "src_len": np.zeros(N, np.int32),
         "tgt_in": np.zeros((N, S + 1), np.int32), "tgt_out": np.zeros((N, S + 1), np.int32),
         "tgt_len": np.zeros(N, np.int32)}
  for i, (s, t) in enumerate(zip(src, tgt)):
    s_ids, t_ids = src_vocab.encode(s), tgt_vocab.encode(t)
    out["src"][i, :len(s_ids)] = s_ids
    out["src_len"][i] = len(s_ids)
    out["tgt_in"][i, :len(t_ids) + 1] = np.concatenate([[1], t_ids])
    out["tgt_out"][i, :len(t_ids) + 1] = np.concatenate([t_ids, [2]])
    out["tgt_len"][i] = len(t_ids) + 1
  return out
