"""Captioning canvases of MNIST digits: soft attention over CNN regions, or the show-and-tell baseline.

Data: ``recurrent.data.canvas`` (1-4 digits in the cells of a grid, random
scale, shift and small rotation; the caption names them in reading order,
each with its place) over ``recurrent.data.mnist``. Training canvases are a
pure function of (seed, step) and use the training digits only; the
``task.num_test`` held-out canvases are drawn once from the test digits only,
by a generator that does not depend on the seed.

A batch: ``src`` uint8 [B, H, W] (the canvases), ``src_len`` [B] (the number
of regions, all real), ``tgt_in``/``tgt_out`` [B, T] (ids of
``canvas.VOCAB``), ``tgt_len`` [B] and ``teacher_forcing``. The model is
``recurrent.captioning.Captioner`` (``model.attention``: "bahdanau" for
Xu et al.'s soft attention, "none" for the baseline); the loss is the mean
token NLL plus ``task.attention_penalty`` x Xu et al.'s doubly stochastic
term (per caption, averaged over captions).

``report`` decodes the held-out canvases greedily and returns BLEU
(sacrebleu, ``tokenize='none'`` on the caption words) and the exact-caption
accuracy (the ``eval_metric``); at the last step (``num_steps``) it also runs
beam search (BLEU, exact captions, the search-vs-model error analysis of
seed 001), splits the errors into wrong digits and wrong places, measures
how much attention falls in the named digit's cell, and returns
``captioning_report.json``, ``captions.json`` (the first held-out captions,
for ``experiments/captioning_report.py``), ``samples.txt`` and, with
attention, ``attention_words.png`` (one attention map per emitted word).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from recurrent.captioning import Captioner, attention_penalty
from recurrent.checks import check_int
from recurrent.data import canvas as canvas_lib
from recurrent.data import mnist
from recurrent.layers import time_mask
from recurrent.tasks import _seq2seq
from recurrent.tasks.base import Figure, Report, Task, token_metrics
from recurrent.tasks.translation import bleu

TEST_SEED = 2_000_003  # the held-out canvases do not depend on the training seed
NUM_FIGURE = 4         # canvases in the attention figure
NUM_CAPTIONS = 24      # held-out captions kept in captions.json


def canvas_spec(t) -> canvas_lib.CanvasSpec:
  return canvas_lib.CanvasSpec(rows=t.rows, cols=t.cols, cell=t.cell, min_digits=t.min_digits,
                               max_digits=t.max_digits, scale_min=t.scale_min,
                               scale_max=t.scale_max, max_rotation=t.max_rotation)


def build_model(config, spec: canvas_lib.CanvasSpec) -> Captioner:
  m = config.model
  return Captioner(vocab=len(canvas_lib.VOCAB), image_shape=spec.shape,
                   conv_features=tuple(m.conv_features), attention=m.attention,
                   global_size=m.global_size, cell=m.cell, embed_size=m.embed_size,
                   decoder_sizes=tuple(m.decoder_sizes), attn_size=m.attn_size,
                   output_size=m.output_size, input_feeding=m.input_feeding, dropout=m.dropout)


def split_metadata(batch: dict) -> tuple[dict, list]:
  """(the model's arrays, [(digits, cells)] per canvas in reading order) of ``canvas.make_batch``."""
  batch = dict(batch)
  digits, cells = batch.pop("digits"), batch.pop("cells")
  meta = [([int(d) for d in ds if d >= 0], [int(c) for c in cs if c >= 0])
          for ds, cs in zip(digits, cells)]
  return batch, meta


@functools.lru_cache(maxsize=2)
def test_set(data_dir: str, spec: canvas_lib.CanvasSpec, n: int) -> tuple[dict, list]:
  """The held-out canvases (test digits only, a fixed generator) and their metadata."""
  images, labels = mnist.load(data_dir, "test")
  return split_metadata(canvas_lib.make_batch(np.random.default_rng(TEST_SEED), images, labels,
                                              spec, n))


def cell_overlap(spec: canvas_lib.CanvasSpec, grid: tuple[int, int]) -> np.ndarray:
  """[R, cells]: the fraction of region r's pixel box that lies in canvas cell c."""
  H, W = spec.shape
  h, w = grid

  def frac(n_regions, size, n_cells):
    out = np.zeros((n_regions, n_cells))
    for i in range(n_regions):
      lo, hi = i * size / n_regions, (i + 1) * size / n_regions
      for c in range(n_cells):
        a, b = c * spec.cell, (c + 1) * spec.cell
        out[i, c] = max(0.0, min(hi, b) - max(lo, a)) / (hi - lo)
    return out

  fr, fc = frac(h, H, spec.rows), frac(w, W, spec.cols)
  return np.einsum("ia,jb->ijab", fr, fc).reshape(h * w, spec.rows * spec.cols)


def step_words(tokens_T, length) -> list[str]:
  """The word emitted at each decoding step (specials included), up to ``length``."""
  return [canvas_lib.VOCAB[int(v)] for v in tokens_T[:int(length)]]


def attention_on_named_cells(weights_NTR, steps, meta, overlap_RC) -> float:
  """Mean attention mass in the named digit's cell while its word is emitted.

  Over the digit words of the captions whose digits (in order) are right, so
  that the i-th digit word names the digit in the i-th occupied cell.
  ``steps``: each caption's ``step_words``.
  """
  masses = []
  for w_TR, words, (labels, cells) in zip(weights_NTR, steps, meta):
    digit_steps = [t for t, word in enumerate(words) if word in canvas_lib.DIGIT_WORDS]
    if [canvas_lib.DIGIT_WORDS.index(words[t]) for t in digit_steps] != labels:
      continue
    for t, cell in zip(digit_steps, cells):
      masses.append(float(w_TR[t] @ overlap_RC[:, cell]))
  return float(np.mean(masses)) if masses else float("nan")


def error_kinds(hyps, refs) -> dict:
  """Counts of wrong captions whose digit words are wrong, and of those whose digits are right but places wrong."""
  digits = lambda ws: [w for w in ws if w in canvas_lib.DIGIT_WORDS]
  wrong = [(h, r) for h, r in zip(hyps, refs) if h != r]
  wrong_digits = sum(digits(h) != digits(r) for h, r in wrong)
  return {"wrong_captions": len(wrong), "wrong_digits": wrong_digits,
          "right_digits_wrong_places": len(wrong) - wrong_digits}


def attention_figure(images, weights, steps, refs, grid, title: str) -> Figure:
  """One row per canvas: the canvas (titled right, or wrong with the reference), then the
  attention map of every emitted word (``step_words``) over it."""
  row_titles = []
  for words, ref in zip(steps, refs):
    ok = canvas_lib.words_of([canvas_lib.WORD_ID[w] for w in words]) == ref
    row_titles.append("right" if ok else "wrong; ref:\n" + " ".join(ref))
  return Figure("attention_grid", {"images": list(images), "weights": list(weights),
                                   "words": list(steps), "row_titles": row_titles,
                                   "grid": tuple(grid), "title": title})


def build(config) -> Task:
  t = config.task
  spec = canvas_spec(t)
  for name in ("num_test", "decode_batch_size"):
    check_int(f"task.{name}", t[name])
  if not 0.0 <= t.attention_penalty < float("inf"):
    raise ValueError(f"task.attention_penalty: must be finite and >= 0, got {t.attention_penalty!r}")
  if t.attention_penalty > 0 and config.model.attention == "none":
    raise ValueError("task.attention_penalty: the doubly stochastic term needs attention; "
                     "model.attention is 'none'")
  if config.decode.max_len < spec.max_words + 1:
    raise ValueError(f"decode.max_len: must be >= the longest caption + EOS = {spec.max_words + 1}, "
                     f"got {config.decode.max_len}")
  train_images, train_labels = mnist.load(t.data_dir, "train")  # both splits read and checked now
  test, meta = test_set(t.data_dir, spec, t.num_test)
  test = dict(test)  # the cached arrays stay untouched
  model = build_model(config, spec)
  R = model.num_regions
  test["src_len"] = np.full((t.num_test,), R, np.int32)
  decoder = _seq2seq.Decoder(model, config.decode, t.decode_batch_size)
  B = config.batch_size
  refs = [canvas_lib.words_of(row) for row in test["tgt_out"]]
  overlap = cell_overlap(spec, model.grid)
  lam = float(t.attention_penalty)

  def train_batch(step):
    rng = np.random.default_rng([config.seed, step])
    batch, _ = split_metadata(canvas_lib.make_batch(rng, train_images, train_labels, spec, B))
    batch["src_len"] = np.full((B,), R, np.int32)
    batch["teacher_forcing"] = _seq2seq.teacher_forcing_ratio(config, step)
    return batch

  def eval_batches():
    for i in range(0, t.num_test, B):
      batch = {k: v[i:i + B] for k, v in test.items()}
      m = len(batch["src"])
      if m < B:  # fixed shapes: empty rows (tgt_len 0) count for nothing
        batch = {k: np.concatenate([v, np.zeros((B - m,) + v.shape[1:], v.dtype)])
                 for k, v in batch.items()}
        batch["src_len"][m:] = R
      batch["teacher_forcing"] = np.float32(1.0)
      yield batch

  def loss_fn(params, batch, rng):
    logits, weights = model.forward(params, batch["src"], batch["src_len"], batch["tgt_in"], rng,
                                    batch["teacher_forcing"])
    mask_BT = time_mask(batch["tgt_len"], batch["tgt_out"].shape[1])
    nll, metrics = token_metrics(logits.astype(jnp.float32), batch["tgt_out"], mask_BT)
    real_B = batch["tgt_len"] > 0
    pen = jnp.where(real_B, attention_penalty(weights, batch["tgt_len"]), 0.0).sum()
    n_caps = real_B.sum()
    loss = nll + lam * pen / jnp.maximum(n_caps, 1)
    if config.model.attention != "none":
      metrics["attention_penalty"] = (pen, n_caps)
    return loss, metrics

  def report(params, step):
    src, src_len = test["src"], test["src_len"]
    tgt_out, tgt_len = test["tgt_out"], test["tgt_len"]
    g = decoder.greedy(params, src, src_len)
    hyps_g = [canvas_lib.words_of(g.tokens[i], g.lengths[i]) for i in range(t.num_test)]
    out = {"bleu_greedy": bleu(hyps_g, refs),
           "exact_greedy": float(np.mean([h == r for h, r in zip(hyps_g, refs)]))}
    print(f"step {step}: held-out canvases {t.num_test}: BLEU {out['bleu_greedy']:.2f}, exact "
          f"captions {out['exact_greedy']:.4f} (greedy)")
    if step < config.num_steps:
      return Report(scalars=out)
    rep = Report(scalars=out)
    b = decoder.beam(params, src, src_len)
    hyps_b = [canvas_lib.words_of(b.tokens[i, 0], b.lengths[i, 0]) for i in range(t.num_test)]
    out["bleu_beam"] = bleu(hyps_b, refs)
    correct = _seq2seq.exact_match(b.tokens[:, 0], b.lengths[:, 0], tgt_out, tgt_len)
    out["exact_beam"] = float(correct.mean())
    ref_lp, _ = decoder.score(params, src, src_len, tgt_out, tgt_len)
    analysis = _seq2seq.error_analysis(decoder.normalised(ref_lp, tgt_len), b.scores[:, 0],
                                       correct)
    out["beam_search_error_fraction"] = analysis["fraction_search"]
    summary = {"step": step, "attention": config.model.attention, "canvases": t.num_test,
               "attention_penalty": lam, **out, "error_analysis": analysis,
               "errors_greedy": error_kinds(hyps_g, refs), "errors_beam": error_kinds(hyps_b, refs)}
    if config.model.attention != "none":
      # Where it looks while naming a digit: teacher-force its own greedy captions.
      _, w = decoder.score(params, src, src_len, g.tokens, g.lengths)
      steps = [step_words(g.tokens[i], g.lengths[i]) for i in range(t.num_test)]
      summary["attention_in_named_cell"] = attention_on_named_cells(w, steps, meta, overlap)
      summary["attention_in_named_cell_uniform"] = 1.0 / (spec.rows * spec.cols)
      if np.isfinite(summary["attention_in_named_cell"]):  # nan: no caption had its digits right
        out["attention_in_named_cell"] = summary["attention_in_named_cell"]
      pick = _figure_rows(meta)
      rep.figures["attention_words.png"] = attention_figure(
          src[pick], np.asarray(w)[pick], [steps[i] for i in pick], [refs[i] for i in pick],
          model.grid, f"{config.model.attention} attention over {model.grid[0]} x "
                     f"{model.grid[1]} regions, step {step} (greedy captions)")
    rep.json["captioning_report.json"] = summary
    n_cap = min(NUM_CAPTIONS, t.num_test)
    rep.json["captions.json"] = {"attention": config.model.attention, "step": step,
                                 "refs": refs[:n_cap], "greedy": hyps_g[:n_cap],
                                 "beam": hyps_b[:n_cap]}
    lines = []
    for i in range(min(12, t.num_test)):
      lines += [f"ref:    {' '.join(refs[i])}", f"greedy: {' '.join(hyps_g[i])}",
                f"beam:   {' '.join(hyps_b[i])}", ""]
    rep.texts["samples.txt"] = "\n".join(lines)
    print("\n".join(lines))
    print(f"BLEU greedy {out['bleu_greedy']:.2f} beam {out['bleu_beam']:.2f}; exact captions "
          f"greedy {out['exact_greedy']:.4f} beam {out['exact_beam']:.4f}; beam errors "
          f"{analysis['errors']}: {analysis['search_errors']} search, "
          f"{analysis['model_errors']} model")
    return rep

  return Task(init_params=model.init, loss_fn=loss_fn, train_batch=train_batch,
              eval_batches=eval_batches, num_tokens=lambda b: int(b["tgt_len"].sum()),
              eval_metric="exact_greedy", eval_mode="max", report=report)


def _figure_rows(meta) -> list[int]:
  """The first held-out canvases with 3, 2, 3, 1 digits (as far as there are), for the figure."""
  rows, want = [], [3, 2, 3, 1]
  for n in want:
    for i, (labels, _) in enumerate(meta):
      if len(labels) == n and i not in rows:
        rows.append(i)
        break
  rest = [i for i in range(len(meta)) if i not in rows]
  return (rows + rest)[:min(NUM_FIGURE, len(meta))]

