"""Token-per-line column files (CoNLL style): UD English EWT POS and WNUT 2017 NER.

    sents = read_columns(path, num_columns=3)   # UD: [[(word, UPOS, XPOS), ...], ...]
    sents = read_columns(path, num_columns=2)   # WNUT: [[(token, BIO tag), ...], ...]

One token per line, columns separated by TAB, sentences separated by blank
lines. WNUT's separator lines are sometimes a lone TAB, so any line of only
whitespace ends a sentence; runs of separators count as one. A line with the
wrong number of columns raises naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

from recurrent.data.files import read_text

POS_FILES = {"train": "ud_english_ewt_pos/en-ud-tag.v2.train.txt",
             "valid": "ud_english_ewt_pos/en-ud-tag.v2.dev.txt",
             "test": "ud_english_ewt_pos/en-ud-tag.v2.test.txt"}
NER_FILES = {"train": "wnut17_ner/wnut17train.conll",
             "valid": "wnut17_ner/emerging.dev.conll",
             "test": "wnut17_ner/emerging.test.annotated"}


def parse_columns(text: str, num_columns: int, where: str = "<text>") -> list[list[tuple[str, ...]]]:
  """Sentences of ``num_columns``-tuples from the text of a column file."""
  sentences, current = [], []
  for n, line in enumerate(text.split("\n"), 1):
    line = line.rstrip("\r")
    if not line.strip():
      if current:
        sentences.append(current)
        current = []
      continue
    cols = tuple(line.split("\t"))
    if len(cols) != num_columns:
      raise ValueError(f"{where}:{n}: expected {num_columns} TAB-separated columns, got {len(cols)}: "
                       f"{line[:80]!r}")
    current.append(cols)
  if current:
    sentences.append(current)
  return sentences


def read_columns(path: str | Path, num_columns: int) -> list[list[tuple[str, ...]]]:
  path = Path(path)
  if not path.exists():
    raise FileNotFoundError(f"data: expected the file {str(path)!r}")
  what = f"one token a line in {num_columns} TAB-separated columns"
  return parse_columns(read_text(path, what), num_columns, str(path))


def column(sentences: list[list[tuple[str, ...]]], k: int) -> list[list[str]]:
  """Column ``k`` of every sentence: [[tok, ...], ...]."""
  return [[cols[k] for cols in s] for s in sentences]
