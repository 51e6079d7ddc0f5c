"""UCI Sentiment Labelled Sentences (Kotzias et al. 2015): 3,000 review sentences labelled 0/1.

    examples = load_sentences(data_file(path, FOLDER))   # [Example(text, label, source)]
    splits = stratified_split([(e.source, e.label) for e in examples], (0.8, 0.1, 0.1), seed=0)

Three files (amazon, imdb, yelp), each ``sentence<TAB>label`` per line, 500
positive and 500 negative. Pitfalls (shared/data/README.md): imdb holds
U+0085, which ``str.splitlines`` takes for a line break, so lines are split
on "\\n" only; sentences hold unbalanced double quotes, so nothing here
treats quotes specially (the equivalent of ``csv.QUOTE_NONE``); many imdb
sentences end with spaces before the TAB (stripped). There is no published
split: ``stratified_split`` makes a deterministic one that keeps the share of
every (source, label) stratum in every part.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from recurrent.data.files import read_text

FOLDER = "sentiment_labelled_sentences"
FILES = {"amazon": "amazon_cells_labelled.txt", "imdb": "imdb_labelled.txt",
         "yelp": "yelp_labelled.txt"}
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


class Example(NamedTuple):
  text: str
  label: int
  source: str


def parse_lines(text: str, source: str, where: str) -> list[Example]:
  """``sentence<TAB>label`` lines (split on "\\n" only) -> examples; a bad line raises naming it."""
  out = []
  for n, line in enumerate(text.split("\n"), 1):
    if not line.strip():
      continue
    sentence, tab, label = line.rpartition("\t")
    label = label.strip()
    if not tab or label not in ("0", "1"):
      raise ValueError(f"{where}:{n}: expected 'sentence<TAB>0|1', got {line[:80]!r}")
    out.append(Example(sentence.strip(), int(label), source))
  return out


def load_sentences(folder: str | Path) -> list[Example]:
  """Every sentence of the three files, in file order (amazon, imdb, yelp)."""
  folder = Path(folder)
  out = []
  for source, name in FILES.items():
    path = folder / name
    if not path.exists():
      raise FileNotFoundError(f"data: expected the file {str(path)!r} (UCI sentiment labelled sentences)")
    out += parse_lines(read_text(path, "'sentence<TAB>0|1' lines"), source, str(path))
  return out


def tokenize(text: str) -> list[str]:
  """Lowercased words (with a clitic like "'s" or "n't" kept on its word) and single punctuation marks."""
  return _TOKEN.findall(text.lower())


def stratified_split(strata: Sequence, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
  """Disjoint, sorted index arrays covering all examples, one per fraction, stratified by ``strata``.

  Within each stratum (examples with equal keys) the indices are shuffled by
  ``np.random.default_rng([seed, s])`` (s the stratum's rank in sorted key
  order) and cut at the cumulative fractions, rounded; the last part takes
  the remainder. The same (strata, fractions, seed) always give the same split.
  """
  fractions = np.asarray(fractions, float)
  if fractions.ndim != 1 or (fractions <= 0).any() or abs(fractions.sum() - 1) > 1e-9:
    raise ValueError(f"fractions: must be positive and sum to 1, got {list(fractions)}")
  keys = sorted(set(strata))
  parts = [[] for _ in fractions]
  for s, key in enumerate(keys):
    idx = np.array([i for i, k in enumerate(strata) if k == key])
    idx = np.random.default_rng([seed, s]).permutation(idx)
    cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
    for part, chunk in zip(parts, np.split(idx, cuts)):
      part.extend(chunk.tolist())
  return [np.array(sorted(p), np.int64) for p in parts]
