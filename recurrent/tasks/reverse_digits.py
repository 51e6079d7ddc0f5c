"""A synthetic seq2seq task: reverse a string of digits (the fast test and smoke check).

The source is n uniform digits, n uniform in [task.min_len, task.max_len];
the target is the same digits in reverse order. Ids: 0 PAD, 1 BOS, 2 EOS,
3 + d for digit d (13 tokens). Training batches are drawn from (seed, step)
alone; the held-out set is ``task.num_test`` strings from a separate stream.

Metrics: the token loss and accuracy (teacher-forced) and, from ``report``,
the exact-match rate of greedy and of beam decoding on the held-out set (the
``eval_metric``: ``greedy_exact_match``) and the beam-search error analysis.
"""

from __future__ import annotations

import numpy as np

from recurrent.checks import check_int
from recurrent.tasks import _seq2seq
from recurrent.tasks.base import Report, Task

VOCAB = 13


def make_examples(rng: np.random.Generator, n: int, min_len: int, max_len: int) -> dict:
  """n random digit strings and their reversals, padded to max_len (+ 1 for BOS/EOS)."""
  lengths = rng.integers(min_len, max_len + 1, size=n).astype(np.int32)
  digits = rng.integers(0, 10, size=(n, max_len)) + 3
  mask = np.arange(max_len)[None, :] < lengths[:, None]
  src = np.where(mask, digits, 0).astype(np.int32)
  rev = np.zeros_like(src)
  for i, L in enumerate(lengths):
    rev[i, :L] = src[i, :L][::-1]
  tgt_in = np.concatenate([np.ones((n, 1), np.int32), rev], 1)
  tgt_out = np.concatenate([rev, np.zeros((n, 1), np.int32)], 1)
  tgt_out[np.arange(n), lengths] = 2
  return {"src": src, "src_len": lengths, "tgt_in": tgt_in, "tgt_out": tgt_out,
          "tgt_len": lengths + 1}


def build(config) -> Task:
  t = config.task
  if not 1 <= t.min_len <= t.max_len:
    raise ValueError(f"task.min_len: must be in [1, task.max_len={t.max_len}], got {t.min_len}")
  model = _seq2seq.build_model(config, VOCAB, VOCAB)
  decoder = _seq2seq.Decoder(model, config.decode, config.batch_size)
  check_int("task.num_test", t.num_test)
  test = make_examples(np.random.default_rng([config.seed, 1]), t.num_test, t.min_len, t.max_len)
  test["teacher_forcing"] = np.float32(1.0)

  def train_batch(step):
    batch = make_examples(np.random.default_rng([config.seed, 0, step]), config.batch_size,
                          t.min_len, t.max_len)
    batch["teacher_forcing"] = _seq2seq.teacher_forcing_ratio(config, step)
    return batch

  def eval_batches():
    B = config.batch_size
    for i in range(0, t.num_test, B):
      batch = {k: v[i:i + B] for k, v in test.items() if k != "teacher_forcing"}
      n = len(batch["src"])
      if n < B:  # fixed shapes: fill with empty rows (tgt_len 0 counts for nothing)
        batch = {k: np.concatenate([v, np.zeros((B - n,) + v.shape[1:], v.dtype)])
                 for k, v in batch.items()}
      batch["teacher_forcing"] = np.float32(1.0)
      yield batch

  def report(params, step):
    src, src_len, tgt_out, tgt_len = (test[k] for k in ("src", "src_len", "tgt_out", "tgt_len"))
    g = decoder.greedy(params, src, src_len)
    b = decoder.beam(params, src, src_len)
    g_ok = _seq2seq.exact_match(g.tokens, g.lengths, tgt_out, tgt_len)
    b_ok = _seq2seq.exact_match(b.tokens[:, 0], b.lengths[:, 0], tgt_out, tgt_len)
    ref_lp, _ = decoder.score(params, src, src_len, tgt_out, tgt_len)
    analysis = _seq2seq.error_analysis(decoder.normalised(ref_lp, tgt_len), b.scores[:, 0], b_ok)
    out = {"greedy_exact_match": float(g_ok.mean()), "beam_exact_match": float(b_ok.mean()),
           "beam_search_error_fraction": analysis["fraction_search"]}
    print(f"step {step}: exact match greedy {out['greedy_exact_match']:.4f}, beam "
          f"{out['beam_exact_match']:.4f}; beam errors {analysis['errors']} "
          f"({analysis['search_errors']} search, {analysis['model_errors']} model)")
    return Report(scalars=out, json={f"report_{step}.json": {**out, **analysis}})

  return Task(init_params=model.init, loss_fn=_seq2seq.make_loss_fn(model),
              train_batch=train_batch, eval_batches=eval_batches,
              num_tokens=lambda b: int(b["src_len"].sum() + b["tgt_len"].sum()),
              eval_metric="greedy_exact_match", eval_mode="max", report=report)
