"""Sentence sentiment, many-to-one (seed 003): which encoding of the hidden states classifies best.

Shape legend: B batch, T time (tokens), C = 2 classes.

    words -> Embed -> RNN (uni- or bidirectional) -> pool -> Dense -> p(positive)

Pooling (``config.model.pooling``): ``last`` takes the final hidden state
(for a bidirectional RNN the forward state at the end and the backward state
at the start), ``mean`` and ``max`` the element-wise mean and max of the
hidden states over the sentence's tokens (padding excluded), which the seed
says is "usually better". The data (UCI Sentiment Labelled Sentences) has no
published split, so ``recurrent.data.sentiment.stratified_split`` makes a
deterministic train/valid/test split stratified by (source, label); the
vocabulary comes from the training part only. The trainer selects on valid
accuracy; ``report`` adds test accuracy at the same parameters and returns
``test_predictions.txt`` (sentences, gold labels, p(positive)).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from recurrent.checks import check_int
from recurrent.data import batching
from recurrent.data.paths import data_file
from recurrent.data.sentiment import FOLDER, Example, load_sentences, stratified_split, tokenize
from recurrent.data.vocab import Vocab
from recurrent.models import SequenceClassifier, rnn_kwargs
from recurrent.tasks.base import Evaluator
from recurrent.tasks.base import Report, Task, argmax_hits, dropout_rngs

SPLITS = ("train", "valid", "test")


def classification_metrics(logits_BC: jax.Array, labels_B: jax.Array):
  """(mean CE over rows with a label >= 0, {'loss', 'accuracy'} as (total, count)); label -1 = empty row."""
  valid_B = labels_B >= 0
  safe_B = jnp.where(valid_B, labels_B, 0)
  ce_B = optax.softmax_cross_entropy_with_integer_labels(logits_BC, safe_B)
  correct_B = argmax_hits(logits_BC, safe_B) & valid_B
  count = jnp.sum(valid_B)
  total = jnp.sum(jnp.where(valid_B, ce_B, 0.0))
  return total / jnp.maximum(count, 1), {"loss": (total, count), "accuracy": (jnp.sum(correct_B), count)}


class Data(NamedTuple):
  """The split sentences, their token ids and labels, the vocabulary and the model (shared with experiments)."""

  splits: dict        # split -> [Example]
  ids: dict           # split -> [np.ndarray of token ids]
  labels: dict        # split -> [N] int32
  vocab: Vocab
  model: SequenceClassifier

  def batch(self, config, split: str, idx: np.ndarray, rows: slice | None = None) -> dict:
    """Padded batch of the sentences ``idx`` of ``split`` (index -1: an empty row with label -1).

    ``rows``: only that slice of the batch, padded like the whole.
    """
    t = config.task
    x, lengths = batching.pad(self.ids[split], idx, t.bucket, t.max_len, pad_value=0, dtype=np.int32,
                              rows=rows)
    idx = idx[rows or slice(None)]
    y = np.where(idx >= 0, self.labels[split][np.maximum(idx, 0)], -1).astype(np.int32)
    return {"inputs": x, "lengths": lengths, "labels": y}


def prepare(config, examples: list[Example]) -> Data:
  """Splits ``examples`` by ``config.task``, builds the vocabulary on train and the model."""
  t = config.task
  for name in ("bucket", "eval_batch_size", "max_len"):
    check_int(f"task.{name}", t[name])
  check_int("task.num_samples", t.num_samples, 0)
  parts = stratified_split([(e.source, e.label) for e in examples], tuple(t.split), t.split_seed)
  splits = {name: [examples[i] for i in idx] for name, idx in zip(SPLITS, parts)}
  tokens = {name: [tokenize(e.text) for e in exs] for name, exs in splits.items()}
  vocab = Vocab.build(tokens["train"], min_count=t.min_count)
  ids = {name: [vocab.encode(s[:t.max_len] or ["<unk>"]) for s in toks] for name, toks in tokens.items()}
  labels = {name: np.array([e.label for e in exs], np.int32) for name, exs in splits.items()}
  model = SequenceClassifier(**rnn_kwargs(config.model), num_outputs=2, pooling=config.model.pooling,
                             vocab_size=len(vocab), embed_size=config.model.embed_size)
  return Data(splits, ids, labels, vocab, model)


def make_task(config, examples: list[Example]) -> Task:
  """The task on given examples (tests pass made-up ones); the split is made here from ``config.task``."""
  t = config.task
  data = prepare(config, examples)
  splits, ids, model = data.splits, data.ids, data.model
  order = batching.EpochOrder(len(ids["train"]), config.batch_size, config.seed)

  def make_batch(split, idx, rows=None):
    return data.batch(config, split, idx, rows)

  def split_batches(split):
    lengths = [len(s) for s in ids[split]]
    for idx in batching.eval_index_batches(len(lengths), t.eval_batch_size, lengths):
      yield make_batch(split, idx)

  def init_params(rng):
    x = jnp.zeros((1, t.bucket), jnp.int32)
    return model.init(rng, x, jnp.ones((1,), jnp.int32))["params"]

  def loss_fn(params, batch, rng):
    rngs = dropout_rngs(rng)
    logits = model.apply({"params": params}, batch["inputs"], batch["lengths"],
                         deterministic=rng is None, rngs=rngs)
    return classification_metrics(logits, batch["labels"])

  evaluate = Evaluator(loss_fn)
  probs_fn = jax.jit(lambda params, x, lengths: jax.nn.softmax(
      model.apply({"params": params}, x, lengths))[:, 1])

  def report(params, step):
    m = evaluate(params, split_batches("test"))
    rep = Report(scalars={"test_accuracy": m["accuracy"], "test_loss": m["loss"]})
    if t.num_samples:
      idx = np.arange(min(t.num_samples, len(ids["test"])))
      batch = make_batch("test", idx)
      p = np.asarray(probs_fn(params, batch["inputs"], batch["lengths"]))
      lines = [f"# step {step}: gold label, p(positive), sentence (test split)"]
      lines += [f"{splits['test'][i].label}\t{p[i]:.3f}\t{splits['test'][i].text}" for i in idx]
      rep.texts["test_predictions.txt"] = "\n".join(lines) + "\n"
    return rep

  return Task(init_params=init_params, loss_fn=loss_fn,
              train_batch=lambda step, rows=None: make_batch("train", order.indices(step), rows),
              eval_batches=lambda: split_batches("valid"),
              num_tokens=lambda batch: int(np.sum(batch["lengths"])),
              eval_metric="accuracy", eval_mode="max", report=report)


def build(config) -> Task:
  return make_task(config, load_sentences(data_file(config.task.data_dir, FOLDER)))
