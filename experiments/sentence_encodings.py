"""Sentence encodings reused as features (seed 003): ``python -m experiments.sentence_encodings``.

    ./launch.sh sentence_encodings --config.num_steps=600 --workdir=runs/sentence_encodings
    python -m experiments.sentence_encodings --config=configs/sentiment.py:smoke --workdir=/tmp/enc

For each pooling (last, mean, max) it trains the sentiment classifier
(configs/sentiment.py with that ``model.pooling``; a finished run in
WORKDIR/POOLING is reused), restores its best checkpoint and takes the
classifier's sentence encodings (``SequenceClassifier.encode``, the vector
its head reads) of every train, valid and test sentence. The encodings are
then used as fixed features, and so are those of the same network at its
random initialisation (the baseline):

  * k nearest neighbours by cosine among the training sentences (k = 1, 10)
    predict the sentiment of each test sentence;
  * a linear probe (logistic regression, l2 chosen on valid) on the frozen
    encodings predicts the sentiment, and another one the review's source
    (amazon / imdb / yelp), a property the classifier was never trained on.

Writes WORKDIR/table.md (the README table), WORKDIR/results.json and
WORKDIR/neighbours.txt (test sentences with their nearest training sentences).
"""

import json
import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from recurrent import features
from recurrent.data import batching
from recurrent.data.paths import data_file
from recurrent.data.sentiment import FOLDER, load_sentences
from recurrent.models import POOLINGS
from recurrent.tasks import sentiment
from recurrent.tasks.base import Evaluator
from recurrent.training.loop import restore_params, train_and_evaluate
from recurrent.training.metrics import quiet_libraries

config_flags.DEFINE_config_file("config", "configs/sentiment.py", "the sentiment config", lock_config=True)
flags.DEFINE_string("workdir", None, "one training run per pooling under WORKDIR/POOLING, and the tables")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS

SOURCES = ("amazon", "imdb", "yelp")
KS = (1, 10)


def encode_split(config, data: sentiment.Data, encode, params, split: str) -> np.ndarray:
  """The encodings [N, H] of every sentence of ``split``, in order (``encode``: jitted model.encode)."""
  n = len(data.ids[split])
  lengths = [len(s) for s in data.ids[split]]
  out = [None] * n
  for idx in batching.eval_index_batches(n, config.task.eval_batch_size, lengths):
    batch = data.batch(config, split, idx)
    z = np.asarray(encode(params, batch["inputs"], batch["lengths"]))
    for row, i in enumerate(idx):
      if i >= 0:
        out[i] = z[row]
  return np.stack(out)


def feature_scores(enc: dict, data: sentiment.Data) -> dict:
  """kNN and probe accuracies on test for one set of encodings {split: [N, H]}."""
  y = data.labels
  src = {s: np.array([SOURCES.index(e.source) for e in data.splits[s]]) for s in data.splits}
  row = {}
  for k in KS:
    pred = features.knn_predict(enc["test"], enc["train"], y["train"], k)
    row[f"knn{k}"] = float(np.mean(pred == y["test"]))
  for name, target, c in (("probe_sentiment", y, 2), ("probe_source", src, len(SOURCES))):
    probe = features.select_probe((enc["train"], target["train"]), (enc["valid"], target["valid"]), c)
    row[name] = float(np.mean(probe.predict(enc["test"]) == target["test"]))
    row[name + "_l2"] = probe.l2
  return row


def neighbours_text(enc: dict, data: sentiment.Data, pooling: str, num: int = 6, k: int = 3) -> str:
  idx, sims = features.cosine_neighbours(enc["test"][:num], enc["train"], k)
  lines = [f"## {pooling} pooling: test sentence (label) -> nearest training sentences (cosine, label)"]
  for q in range(idx.shape[0]):
    e = data.splits["test"][q]
    lines.append(f"[{e.label}] {e.text}")
    for i, s in zip(idx[q], sims[q]):
      t = data.splits["train"][i]
      lines.append(f"    {s:.3f} [{t.label}] {t.text}")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  quiet_libraries()
  start = time.perf_counter()
  root = Path(FLAGS.workdir)
  base = FLAGS.config
  examples = load_sentences(data_file(base.task.data_dir, FOLDER))
  results, texts = [], []
  for pooling in POOLINGS:
    config = base.copy_and_resolve_references()
    config.model.pooling = pooling
    workdir = root / pooling
    logging.info("training the %s-pooling classifier in %s", pooling, workdir)
    t0 = time.perf_counter()
    final = train_and_evaluate(config, workdir)
    train_s = time.perf_counter() - t0
    step, params = restore_params(config, workdir, "best")
    data = sentiment.prepare(config, examples)
    task = sentiment.make_task(config, examples)
    initial = task.init_params(jax.random.key(config.seed))
    clf_acc = Evaluator(task.loss_fn)(params, _test_batches(config, data))["accuracy"]
    encode = jax.jit(lambda p, x, lengths: data.model.apply({"params": p}, x, lengths, method="encode"))
    for which, p in (("trained", params), ("untrained", initial)):
      enc = {s: encode_split(config, data, encode, p, s) for s in sentiment.SPLITS}
      row = {"pooling": pooling, "encoder": which, "best_step": step if which == "trained" else 0,
             "classifier_test_acc": clf_acc if which == "trained" else None,
             "train_s": train_s, **feature_scores(enc, data)}
      logging.info("%s", row)
      results.append(row)
      if which == "trained":
        texts.append(neighbours_text(enc, data, pooling))
    del final
  root.mkdir(parents=True, exist_ok=True)
  (root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
  (root / "neighbours.txt").write_text("\n\n".join(texts) + "\n")
  table = render(results)
  (root / "table.md").write_text(table + "\n")
  print(table)
  print(f"wall time {time.perf_counter() - start:.0f} s")


def _test_batches(config, data):
  lengths = [len(s) for s in data.ids["test"]]
  for idx in batching.eval_index_batches(len(lengths), config.task.eval_batch_size, lengths):
    yield data.batch(config, "test", idx)


def render(results: list[dict]) -> str:
  head = ("| pooling | encoder | best step | classifier (test) | 1-NN | 10-NN | probe: sentiment |"
          " probe: source (3-way) |")
  lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for r in results:
    clf = "" if r["classifier_test_acc"] is None else f"{r['classifier_test_acc']:.3f}"
    lines.append(f"| {r['pooling']} | {r['encoder']} | {r['best_step']} | {clf} | {r['knn1']:.3f} |"
                 f" {r['knn10']:.3f} | {r['probe_sentiment']:.3f} | {r['probe_source']:.3f} |")
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
