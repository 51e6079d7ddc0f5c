"""French-to-English translation on the Tatoeba pairs (ManyThings.org), with BLEU and attention maps.

Data: ``recurrent.data.translation`` (word tokens, vocabulary cap, length
filter, deterministic held-out split by source sentence). Every batch has the
fixed shape [B, max_words] (source) and [B, max_words + 1] (target), so the
train step, the eval step and decoding each compile once.

``report`` decodes the first ``task.bleu_sentences`` held-out sentences
greedily and returns their corpus BLEU (sacrebleu, on our lowercased word
tokens, ``tokenize='none'``). At the last step (``num_steps``) it also runs
beam search and returns, for the trainer to write: ``translation_report.json`` (BLEU
greedy and beam, BLEU by source length, the beam-search error analysis of
seed 001), ``samples.txt`` (sample translations, also printed) and
``attention_<i>.png`` (alignment heatmaps of a few sentences, for the models
with attention).
"""

from __future__ import annotations

import functools

import numpy as np

from recurrent.checks import check_int
from recurrent.data import translation as data_lib
from recurrent.tasks import _seq2seq
from recurrent.tasks.base import Figure, Report, Task

NUM_HEATMAPS = 4
NUM_SAMPLES = 12


@functools.lru_cache(maxsize=2)
def load(data_path: str, source: str, max_words: int, vocab_size: int, test_percent: float):
  """The prepared data and its fixed-shape arrays (cached: the report binary builds the task again)."""
  data = data_lib.prepare(data_lib.read_pairs(data_path or None), source, max_words, vocab_size,
                          test_percent)
  train = data_lib.to_arrays(data.train_src, data.train_tgt, data.src_vocab, data.tgt_vocab,
                             max_words)
  test = data_lib.to_arrays(data.test_src, data.test_tgt, data.src_vocab, data.tgt_vocab,
                            max_words)
  return data, train, test


@functools.lru_cache(maxsize=2)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(n)


def bleu(hyps: list[list[str]], refs: list[list[str]]) -> float:
  import sacrebleu
  return sacrebleu.corpus_bleu([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]],
                               tokenize="none").score


def bleu_by_length(hyps, refs, src_lengths, min_count: int = 20) -> dict:
  """{source length: (BLEU, count)} for every length with at least ``min_count`` sentences."""
  out = {}
  for L in sorted(set(int(x) for x in src_lengths)):
    idx = [i for i, x in enumerate(src_lengths) if x == L]
    if len(idx) >= min_count:
      out[L] = (bleu([hyps[i] for i in idx], [refs[i] for i in idx]), len(idx))
  return out


def heatmap(weights_TS: np.ndarray, src: list[str], hyp: list[str], title: str) -> Figure:
  """The alignment of an output (rows) over the source words (columns), as a figure to draw."""
  return Figure("heatmap", {"weights": weights_TS, "x_labels": src, "y_labels": hyp, "vmax": 1.0,
                            "xlabel": "source (French)", "ylabel": "output (English)",
                            "title": title})


def build(config) -> Task:
  t = config.task
  check_int("task.decode_batch_size", t.decode_batch_size)
  data, train, test = load(t.data_path, t.source, t.max_words, t.vocab_size, t.test_percent)
  model = _seq2seq.build_model(config, len(data.src_vocab), len(data.tgt_vocab))
  decoder = _seq2seq.Decoder(model, config.decode, t.decode_batch_size)
  N, B = len(train["src"]), config.batch_size
  if B > N:
    raise ValueError(f"batch_size: must be <= the {N} training pairs, got {B}")
  n_bleu = min(t.bleu_sentences, len(test["src"]))
  if n_bleu < 1:
    raise ValueError(f"task.bleu_sentences: must be >= 1 and the held-out split non-empty, got "
                     f"{t.bleu_sentences} of {len(test['src'])} held-out pairs")

  def train_batch(step, rows=None):  # rows: a slice of the batch (one process's share)
    epoch, i = divmod(step, N // B)
    idx = _permutation(config.seed, epoch, N)[i * B:(i + 1) * B][rows or slice(None)]
    batch = {k: v[idx] for k, v in train.items()}
    batch["teacher_forcing"] = _seq2seq.teacher_forcing_ratio(config, step)
    return batch

  def eval_batches():
    n = len(test["src"])
    for i in range(0, n, B):
      batch = {k: v[i:i + B] for k, v in test.items()}
      m = len(batch["src"])
      if m < B:  # fixed shapes: empty rows (tgt_len 0) count for nothing
        batch = {k: np.concatenate([v, np.zeros((B - m,) + v.shape[1:], v.dtype)])
                 for k, v in batch.items()}
      batch["teacher_forcing"] = np.float32(1.0)
      yield batch

  def words(ids) -> list[str]:
    return data.tgt_vocab.decode(ids, stop="<eos>")

  def report(params, step):
    src, src_len = test["src"][:n_bleu], test["src_len"][:n_bleu]
    refs = data.test_tgt[:n_bleu]
    g = decoder.greedy(params, src, src_len)
    hyps_g = [words(g.tokens[i]) for i in range(n_bleu)]
    out = {"bleu_greedy": bleu(hyps_g, refs)}
    print(f"step {step}: BLEU (greedy, {n_bleu} held-out sentences) {out['bleu_greedy']:.2f}")
    if step < config.num_steps:
      return Report(scalars=out)
    b = decoder.beam(params, src, src_len)
    hyps_b = [words(b.tokens[i, 0]) for i in range(n_bleu)]
    out["bleu_beam"] = bleu(hyps_b, refs)
    tgt_out, tgt_len = test["tgt_out"][:n_bleu], test["tgt_len"][:n_bleu]
    ref_lp, _ = decoder.score(params, src, src_len, tgt_out, tgt_len)
    correct = _seq2seq.exact_match(b.tokens[:, 0], b.lengths[:, 0], tgt_out, tgt_len)
    analysis = _seq2seq.error_analysis(decoder.normalised(ref_lp, tgt_len), b.scores[:, 0],
                                       correct)
    out["beam_search_error_fraction"] = analysis["fraction_search"]
    summary = {
        "step": step, "attention": config.model.attention, "sentences": n_bleu, **out,
        "bleu_by_source_length_greedy": bleu_by_length(hyps_g, refs, src_len),
        "bleu_by_source_length_beam": bleu_by_length(hyps_b, refs, src_len),
        "error_analysis": analysis,
    }
    rep = Report(scalars=out, json={"translation_report.json": summary})
    lines = []
    for i in np.linspace(0, n_bleu - 1, NUM_SAMPLES).astype(int):
      lines += [f"src:    {' '.join(data.test_src[i])}", f"ref:    {' '.join(refs[i])}",
                f"greedy: {' '.join(hyps_g[i])}", f"beam:   {' '.join(hyps_b[i])}", ""]
    rep.texts["samples.txt"] = "\n".join(lines)
    print("\n".join(lines))
    print(f"BLEU greedy {out['bleu_greedy']:.2f}  beam {out['bleu_beam']:.2f}; beam errors "
          f"{analysis['errors']}: {analysis['search_errors']} search, "
          f"{analysis['model_errors']} model")
    if config.model.attention != "none":
      # Alignments of the model's own beam output: teacher-force it and read the weights.
      # Sentences of 6+ words when there are any, else the longest ones (short held-out data).
      long_enough = [i for i in range(n_bleu) if src_len[i] >= 6]
      pick = (long_enough or sorted(range(n_bleu), key=lambda i: -int(src_len[i])))[:NUM_HEATMAPS]
      _, w = decoder.score(params, src[pick], src_len[pick], b.tokens[pick, 0],
                           b.lengths[pick, 0])
      for j, i in enumerate(pick):
        hyp = words(b.tokens[i, 0]) + ["<eos>"]
        rep.figures[f"attention_{j}.png"] = heatmap(
            np.asarray(w[j, :len(hyp), :src_len[i]]), data.test_src[i], hyp,
            f"{config.model.attention} attention")
    return rep

  return Task(init_params=model.init, loss_fn=_seq2seq.make_loss_fn(model),
              train_batch=train_batch, eval_batches=eval_batches,
              num_tokens=lambda b: int(b["src_len"].sum() + b["tgt_len"].sum()),
              eval_metric="bleu_greedy", eval_mode="max", report=report)
