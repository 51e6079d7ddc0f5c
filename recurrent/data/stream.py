"""A token stream for stateful (truncated-BPTT) language models: B contiguous streams read in windows of T.

Shape legend: N tokens in a split, B streams (the batch), L tokens per stream,
T tokens per window (the truncated-BPTT length), W windows per epoch.

Training (Zaremba et al. 2014, their ``ptb_iterator``): the split's ids are
cut into B contiguous streams, ``ids_BL = ids[:B * L].reshape(B, L)`` with
L = N // B (the last N - B L tokens are dropped), and read left to right in
W = (L - 1) // T windows:

    inputs_BT  = ids_BL[:, k T     : k T + T]
    targets_BT = ids_BL[:, k T + 1 : k T + T + 1],     k = step mod W

so window k + 1 continues window k in every stream, and each epoch predicts
every token of ``ids_BL[:, 1 : W T + 1]`` exactly once. ``reset`` is True at
the first window of an epoch (k = 0): the state carried over from the end of
the previous epoch is dropped there. A window is a pure function of the step
(the reading order is fixed; the seed does not enter), so a run resumed in the
middle of an epoch reads exactly the windows an uninterrupted run would.

Evaluation scores every token of a split exactly once with the state carried
over the whole split: the N - 1 (input, target) pairs are cut into B streams
of ceil((N - 1) / B) pairs, the last one padded with weight 0, read in windows
of T (the last window padded). With B = 1 this is one unroll over the split.

Corpora are word-level text files (Mikolov's PTB, WikiText-2): whitespace
tokens, with ``<eos>`` appended at every line end. The vocabulary is built
from the training split only, and valid/test must be covered by it (both
corpora map rare words to ``<unk>`` beforehand): a token outside it is an
error naming the split, never a silent ``<unk>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from recurrent.data.vocab import Vocab

EOS = "<eos>"


def read_words(path: str | os.PathLike) -> list[str]:
  """Whitespace tokens of a text file, ``<eos>`` after every line; a missing or empty file fails naming it."""
  p = Path(path)
  if not p.is_file():
    raise FileNotFoundError(f"corpus: expected the file {str(p)!r}")
  words = []
  with open(p, encoding="utf-8") as f:
    for line in f:
      words.extend(line.split())
      words.append(EOS)
  if not any(w != EOS for w in words):
    raise ValueError(f"corpus: {str(p)!r} holds no tokens (empty file)")
  return words


def build_vocab(train_words: list[str]) -> Vocab:
  """Every word of the training split, most frequent first (ties by the string); no specials added."""
  return Vocab.build([train_words], specials=())


def encode(words: list[str], vocab: Vocab, split: str) -> np.ndarray:
  """int32 ids; a word outside the vocabulary fails naming the split and the first such words."""
  missing = sorted({w for w in words if w not in vocab.stoi})
  if missing:
    raise ValueError(
        f"{split}: {len(missing)} word type(s) are not in the vocabulary, e.g. {missing[:5]}; "
        f"the vocabulary must be built from the training split of the same corpus, and "
        f"valid/test must already map rare words to <unk>")
  return np.array([vocab.stoi[w] for w in words], np.int32)


def check_length(n: int, B: int, T: int, split: str) -> None:
  """A split must fill at least one window of T + 1 tokens in each of B streams."""
  if n // B < T + 1:
    raise ValueError(
        f"{split}: {n} tokens is too small for {B} streams of windows of {T} tokens; it needs "
        f"at least B * (T + 1) = {B * (T + 1)} tokens (lower batch_size or the window length)")


def streams(ids_N: np.ndarray, B: int) -> np.ndarray:
  """[B, L]: the ids cut into B contiguous streams of L = N // B (the remainder dropped)."""
  L = len(ids_N) // B
  return np.asarray(ids_N[:B * L]).reshape(B, L)


def windows_per_epoch(ids_BL: np.ndarray, T: int) -> int:
  """W = (L - 1) // T."""
  return (ids_BL.shape[1] - 1) // T


def train_window(ids_BL: np.ndarray, step: int, T: int) -> dict:
  """The batch of a step: {"inputs", "targets": [B, T] int32, "weights": [B, T], "reset": bool}."""
  W = windows_per_epoch(ids_BL, T)
  k = step % W
  x = ids_BL[:, k * T:k * T + T]
  y = ids_BL[:, k * T + 1:k * T + T + 1]
  return {"inputs": x.astype(np.int32), "targets": y.astype(np.int32),
          "weights": np.ones(x.shape, np.float32), "reset": np.asarray(k == 0)}


def eval_windows(ids_N: np.ndarray, B: int, T: int) -> Iterator[dict]:
  """Every pair (ids[i], ids[i + 1]) once, in B carried streams and windows of T (padding: weight 0)."""
  ids_N = np.asarray(ids_N)
  if len(ids_N) < 2:
    raise ValueError(f"eval split: needs at least 2 tokens, got {len(ids_N)}")
  P = len(ids_N) - 1
  L = -(-P // B)
  W = -(-L // T)
  x, y, w = (np.zeros(B * W * T, dt) for dt in (np.int32, np.int32, np.float32))
  x[:P], y[:P], w[:P] = ids_N[:-1], ids_N[1:], 1.0
  # stream b holds pairs [b L, (b + 1) L); positions past L in a stream are padding
  x_BL, y_BL, w_BL = (a[:B * L].reshape(B, L) for a in (x, y, w))
  pad = W * T - L
  x_BL, y_BL, w_BL = (np.pad(a, ((0, 0), (0, pad))) for a in (x_BL, y_BL, w_BL))
  for k in range(W):
    s = slice(k * T, k * T + T)
    yield {"inputs": x_BL[:, s], "targets": y_BL[:, s], "weights": w_BL[:, s],
           "reset": np.asarray(k == 0)}
