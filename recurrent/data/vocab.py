"""A token vocabulary: strings <-> ids, with reserved padding and unknown ids.

    vocab = Vocab.build(train_tokens, min_count=2)    # ids 0 = <pad>, 1 = <unk>, then by frequency
    ids = vocab.encode(["the", "film"]); vocab.decode(ids)
    Vocab.build(sentences, max_size=6000, specials=("<pad>", "<bos>", "<eos>", "<unk>"))

Built from the training split only, so held-out words the model never saw
map to <unk> as they would at test time. Ties in frequency are broken by the
string, so the same data give the same ids on every machine.
"""

from __future__ import annotations

import collections
from typing import Iterable, Sequence

import numpy as np

PAD, UNK = "<pad>", "<unk>"


class Vocab:
  """Ids for strings; ``specials`` come first (by default <pad> = 0 and <unk> = 1)."""

  def __init__(self, tokens: Sequence[str], specials: Sequence[str] = (PAD, UNK)):
    self.itos = list(specials) + [t for t in tokens if t not in specials]
    self.stoi = {s: i for i, s in enumerate(self.itos)}
    if len(self.stoi) != len(self.itos):
      raise ValueError("tokens: must be distinct")
    self.unk_id = self.stoi.get(UNK)

  @classmethod
  def build(cls, sequences: Iterable[Sequence[str]], min_count: int = 1,
            specials: Sequence[str] = (PAD, UNK), max_size: int | None = None) -> "Vocab":
    """Every token seen at least ``min_count`` times, most frequent first.

    With ``max_size``, only the ``max_size - len(specials)`` most frequent of
    them, so that the vocabulary, specials included, has ``max_size`` ids at most.
    """
    if min_count < 1:
      raise ValueError(f"min_count: must be >= 1, got {min_count}")
    if max_size is not None and max_size <= len(specials):
      raise ValueError(f"max_size: must be > {len(specials)} (the specials), got {max_size}")
    counts = collections.Counter(t for seq in sequences for t in seq)
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    if max_size is not None:
      kept = kept[:max_size - len(specials)]
    return cls(kept, specials)

  def __len__(self) -> int:
    return len(self.itos)

  def encode(self, tokens: Sequence[str]) -> np.ndarray:
    """int32 ids; a token not in the vocabulary becomes <unk> (an error if there is none)."""
    if self.unk_id is None:
      missing = [t for t in tokens if t not in self.stoi]
      if missing:
        raise ValueError(f"tokens: not in the vocabulary and no {UNK}: {missing[:5]}")
    return np.array([self.stoi.get(t, self.unk_id) for t in tokens], np.int32)

  def decode(self, ids: Iterable[int], stop: str | None = None) -> list[str]:
    """The tokens of ``ids``; with ``stop``, only those before its first occurrence."""
    out = []
    for i in ids:
      token = self.itos[int(i)]
      if token == stop:
        break
      out.append(token)
    return out
