"""What POS tagging and NER share: word + casing inputs, an aligned tagger, masked per-token loss.

Shape legend: B batch, T time (tokens), E word embedding, S casing classes, C tags.

    x_t = [Embed(lowercased word_t) ; one_hot(casing_t)]  -> RNN (uni/bi) -> Dense -> tag logits [B, T, C]

Words are lowercased (the vocabulary comes from the training split; rarer
than ``task.min_count`` -> <unk>) and their capitalisation kept as a small
categorical feature, since case is much of the evidence for proper nouns
and entities. The loss is the cross-entropy per real token (padding
excluded), and accuracy counts real tokens only.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from recurrent import decoding
from recurrent.checks import check_int
from recurrent.data import batching
from recurrent.data.vocab import Vocab
from recurrent.layers import time_mask
from recurrent.models import SequenceTagger, rnn_kwargs
from recurrent.tasks.base import Evaluator
from recurrent.tasks import base
from recurrent.tasks.base import Task

CASINGS = ("pad", "lower", "title", "upper", "digit", "other")  # ids 0..5


def casing(word: str) -> int:
  """The casing class of a word: lower, Title, UPPER, has a digit, or other (punctuation, mixed)."""
  if any(ch.isdigit() for ch in word):
    return CASINGS.index("digit")
  if word.islower():
    return CASINGS.index("lower")
  if word.isupper():
    return CASINGS.index("upper")
  if word[:1].isupper() and (len(word) == 1 or word[1:].islower()):
    return CASINGS.index("title")
  return CASINGS.index("other")


class WordTagger(nn.Module):
  """Embedded words joined with one-hot casing, then ``SequenceTagger`` over the features."""

  tagger: SequenceTagger
  vocab_size: int
  embed_size: int

  @nn.compact
  def __call__(self, words_BT, casing_BT, lengths_B, deterministic: bool = True):
    e_BTE = nn.Embed(self.vocab_size, self.embed_size, name="embed")(words_BT)
    x_BTD = jnp.concatenate([e_BTE, jax.nn.one_hot(casing_BT, len(CASINGS), dtype=e_BTE.dtype)], -1)
    return self.tagger(x_BTD, lengths_B, deterministic=deterministic)


def token_metrics(logits_BTC, tags_BT, lengths_B):
  """(mean CE over real tokens, {'loss', 'accuracy'} as (total, count)); t >= length is padding."""
  return base.token_metrics(logits_BTC, tags_BT, time_mask(lengths_B, logits_BTC.shape[1]))


class TaggingData:
  """Encoded splits {'train'|'valid'|'test': (words [[str]], tags [[str]])} and their vocabularies."""

  def __init__(self, splits: dict, min_count: int):
    for name, (words, tags) in splits.items():
      if len(words) != len(tags) or any(len(w) != len(t) for w, t in zip(words, tags)):
        raise ValueError(f"splits[{name!r}]: words and tags must align sentence by sentence")
    self.words = {k: w for k, (w, _) in splits.items()}
    self.tags = {k: t for k, (_, t) in splits.items()}
    self.vocab = Vocab.build([[w.lower() for w in s] for s in self.words["train"]], min_count)
    self.tag_vocab = Vocab.build(self.tags["train"], 1, specials=())
    self.word_ids, self.casing_ids, self.tag_ids = {}, {}, {}
    for k in splits:
      unknown = {t for s in self.tags[k] for t in s} - set(self.tag_vocab.itos)
      if unknown:
        raise ValueError(f"splits[{k!r}]: tags not seen in training: {sorted(unknown)[:5]}")
      self.word_ids[k] = [self.vocab.encode([w.lower() for w in s]) for s in self.words[k]]
      self.casing_ids[k] = [np.array([casing(w) for w in s], np.int32) for s in self.words[k]]
      self.tag_ids[k] = [self.tag_vocab.encode(s) for s in self.tags[k]]


def make_tagging_task(config, data: TaggingData, eval_metric: str, eval_mode: str,
                      extra_report: Callable | None = None) -> Task:
  """The Task; ``extra_report(params, predict, step) -> Report`` adds task metrics (F1) and files."""
  t = config.task
  for name in ("bucket", "eval_batch_size", "max_len"):
    check_int(f"task.{name}", t[name])
  check_int("model.embed_size", config.model.embed_size)
  check_int("task.num_samples", t.num_samples, 0)
  for split in ("valid", "test"):
    longest = max(len(s) for s in data.word_ids[split])
    if longest > t.max_len:
      raise ValueError(f"task.max_len: must cover every {split} sentence (the longest has {longest} "
                       f"tokens), got {t.max_len}; evaluation sentences are never cut")
  tagger = SequenceTagger(**rnn_kwargs(config.model), num_outputs=len(data.tag_vocab))
  model = WordTagger(tagger, len(data.vocab), config.model.embed_size)
  order = batching.EpochOrder(len(data.word_ids["train"]), config.batch_size, config.seed)

  def make_batch(split, idx, rows=None):  # rows: a slice of the batch, padded like the whole
    w, lengths = batching.pad(data.word_ids[split], idx, t.bucket, t.max_len, dtype=np.int32, rows=rows)
    c, _ = batching.pad(data.casing_ids[split], idx, t.bucket, t.max_len, dtype=np.int32, rows=rows)
    y, _ = batching.pad(data.tag_ids[split], idx, t.bucket, t.max_len, dtype=np.int32, rows=rows)
    return {"words": w, "casing": c, "tags": y, "lengths": lengths,
            "index": idx[rows or slice(None)]}

  def split_batches(split):
    lengths = [len(s) for s in data.word_ids[split]]
    for idx in batching.eval_index_batches(len(lengths), t.eval_batch_size, lengths):
      yield make_batch(split, idx)

  def logits_fn(params, batch, rng=None):
    rngs = base.dropout_rngs(rng)
    return model.apply({"params": params}, batch["words"], batch["casing"], batch["lengths"],
                       deterministic=rng is None, rngs=rngs)

  def init_params(rng):
    z = jnp.zeros((1, t.bucket), jnp.int32)
    return model.init(rng, z, z, jnp.ones((1,), jnp.int32))["params"]

  def loss_fn(params, batch, rng):
    return token_metrics(logits_fn(params, batch, rng), batch["tags"], batch["lengths"])

  evaluate = Evaluator(loss_fn)
  argmax_fn = jax.jit(lambda params, batch: decoding.argmax(logits_fn(params, batch), -1))

  def predict(params, split):
    """Predicted tag strings of every sentence of ``split`` (padding stripped), in file order."""
    out = [None] * len(data.word_ids[split])
    for batch in split_batches(split):
      pred_BT = np.asarray(argmax_fn(params, {k: v for k, v in batch.items() if k != "index"}))
      for b, i in enumerate(batch["index"]):
        if i >= 0:
          out[i] = data.tag_vocab.decode(pred_BT[b, :batch["lengths"][b]])
    return out

  def report(params, step):
    m = evaluate(params, split_batches("test"))
    out = base.Report(scalars={"test_accuracy": m["accuracy"], "test_loss": m["loss"]})
    if extra_report is not None:
      extra = extra_report(params, predict, step)
      out.scalars.update(extra.scalars)
      out.texts.update(extra.texts)
    return out

  def train_batch(step, rows=None):  # rows: a slice of the batch (one process's share)
    batch = make_batch("train", order.indices(step), rows)
    del batch["index"]
    return batch

  def eval_batches():
    for batch in split_batches("valid"):
      del batch["index"]
      yield batch

  return Task(init_params=init_params, loss_fn=loss_fn, train_batch=train_batch,
              eval_batches=eval_batches, num_tokens=lambda batch: int(np.sum(batch["lengths"])),
              eval_metric=eval_metric, eval_mode=eval_mode, report=report)


def samples_text(words, gold, pred, num: int, step: int) -> str:
  """The first ``num`` sentences as word/gold/predicted columns (a * marks a wrong tag)."""
  lines = [f"# step {step}: word, gold tag, predicted tag (* = wrong)"]
  for s in range(min(num, len(words))):
    lines += [f"{w}\t{g}\t{p}{'' if g == p else '  *'}" for w, g, p in zip(words[s], gold[s], pred[s])]
    lines.append("")
  return "\n".join(lines)
