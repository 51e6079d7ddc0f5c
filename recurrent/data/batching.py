"""Padding and batching shared by every sequence data set: batches as pure functions of (seed, step).

Shape legend: B batch, T time (padded), F per-step features (none for token ids).

    order = EpochOrder(num_examples=n, batch_size=B, seed=seed)
    idx_B = order.indices(step)                 # the examples of training step `step`
    x_BT, lengths_B = pad(seqs, idx_B, bucket=16)
    for idx_B in eval_index_batches(n, B, lengths): ...   # the whole split, once; -1 = empty row

Training draws the examples of step s from the permutation of epoch
``s // steps_per_epoch``, itself drawn from ``fold_in(key(seed), epoch)``
(every epoch sees each example at most once; the last partial batch of an
epoch is dropped). Nothing else is consulted, so the batch of a step is the
same whether the run was interrupted or not.

Padded length: the longest sequence of the batch rounded up to a multiple of
``bucket`` (and capped at ``max_len`` if given), so a jitted step compiles
once per bucket instead of once per batch. Padding is ``pad_value``; the
``lengths`` say where each sequence ends, and every loss masks with them.
Evaluation batches keep a fixed B: a short last batch is filled with empty
rows (index -1, length 0), which count for nothing in (total, count) metrics.
"""

from __future__ import annotations

import functools
from typing import Iterator, Sequence

import jax
import numpy as np

from recurrent.checks import check_int


@functools.lru_cache(maxsize=4)
def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The order of the examples in one epoch: a permutation from fold_in(key(seed), epoch)."""
  key = jax.random.fold_in(jax.random.key(seed), epoch)
  return np.asarray(jax.random.permutation(key, num_examples))


class EpochOrder:
  """Which examples make the training batch of a step (see the module docstring)."""

  def __init__(self, num_examples: int, batch_size: int, seed: int):
    check_int("num_examples", num_examples)
    check_int("batch_size", batch_size)
    if batch_size > num_examples:
      raise ValueError(f"batch_size: must be <= the {num_examples} training examples, got {batch_size}")
    self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
    self.steps_per_epoch = num_examples // batch_size

  def indices(self, step: int) -> np.ndarray:
    """[B] example indices of training step ``step`` (>= 0)."""
    if step < 0:
      raise ValueError(f"step: must be >= 0, got {step}")
    epoch, i = divmod(int(step), self.steps_per_epoch)
    perm = epoch_permutation(self.seed, epoch, self.num_examples)
    return perm[i * self.batch_size:(i + 1) * self.batch_size]


def eval_index_batches(num_examples: int, batch_size: int,
                       lengths: Sequence[int] | None = None) -> Iterator[np.ndarray]:
  """Every example once, in fixed-size [B] batches; the last is filled with -1 (empty rows).

  When ``lengths`` is given, examples are taken in order of length so that
  each batch pads little (metrics are sums, so the order does not matter).
  """
  check_int("batch_size", batch_size)
  order = np.arange(num_examples) if lengths is None else np.argsort(
      np.asarray(lengths), kind="stable")
  for start in range(0, num_examples, batch_size):
    idx = order[start:start + batch_size]
    yield np.concatenate([idx, np.full(batch_size - len(idx), -1, idx.dtype)])


def padded_length(longest: int, bucket: int, max_len: int | None = None) -> int:
  """``longest`` rounded up to a multiple of ``bucket`` (at least one bucket), capped at ``max_len``."""
  check_int("bucket", bucket)
  t = max(-(-int(longest) // bucket), 1) * bucket
  return t if max_len is None else min(t, max_len)


def pad(seqs: Sequence[np.ndarray], indices: np.ndarray, bucket: int = 16,
        max_len: int | None = None, pad_value=0, dtype=None,
        rows: slice | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Stacks ``seqs[i]`` for i in ``indices`` into [B, T, ...] padded with ``pad_value`` -> (array, lengths [B]).

  ``seqs`` are arrays [T_i, ...] with the same trailing shape. An index of -1
  gives an empty row (length 0). Sequences longer than ``max_len`` are cut
  to their first ``max_len`` steps. ``rows`` (a slice of the batch) builds
  only those rows, padded to the whole batch's T: exactly ``pad(...)[0][rows]``
  (one process's share of a global batch, ``recurrent.training.distributed``).
  """
  indices = np.asarray(indices)
  real = [seqs[i] for i in indices if i >= 0]
  if not real:
    raise ValueError("indices: a batch needs at least one real example, got only -1")
  trailing = np.asarray(real[0]).shape[1:]
  dtype = dtype or np.asarray(real[0]).dtype
  lengths = np.array([len(seqs[i]) if i >= 0 else 0 for i in indices], np.int32)
  if max_len is not None:
    lengths = np.minimum(lengths, max_len)
  T = padded_length(lengths.max(), bucket, max_len)  # of the whole batch, whatever ``rows``
  if rows is not None:
    indices, lengths = indices[rows], lengths[rows]
  out = np.full((len(indices), T) + trailing, pad_value, dtype)
  for b, i in enumerate(indices):
    if i >= 0:
      out[b, :lengths[b]] = np.asarray(seqs[i])[:lengths[b]]
  return out, lengths
