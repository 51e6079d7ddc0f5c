"""Sentence encodings: ``SequenceClassifier.encode``, cosine neighbours, the linear probe, the experiment's pieces."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import sentiment as sentiment_config
from experiments import sentence_encodings as exp
from recurrent import features
from recurrent.data.sentiment import FOLDER, load_sentences
from recurrent.layers import make_stack
from recurrent.models import SequenceClassifier
from recurrent.tasks import sentiment as sentiment_task
from test_sentiment import write_fake_data

LENGTHS = jnp.array([5, 2, 3], jnp.int32)


def test_encode_is_the_pooled_states_the_head_reads():
  x = jax.random.normal(jax.random.key(1), (3, 5, 2))
  m = SequenceClassifier(cell="gru", hidden_sizes=(4, 4), num_outputs=3, pooling="max")
  v = m.init(jax.random.key(0), x, LENGTHS)
  _, ys = make_stack("gru", 2, (4, 4)).apply(v["params"]["rnn"]["stack"], x, LENGTHS)
  ys = np.asarray(ys)
  want = {"last": [ys[b, L - 1] for b, L in enumerate(LENGTHS)],
          "mean": [ys[b, :L].mean(0) for b, L in enumerate(LENGTHS)],
          "max": [ys[b, :L].max(0) for b, L in enumerate(LENGTHS)]}
  for how, rows in want.items():
    got = m.apply(v, x, LENGTHS, pooling=how, method="encode")
    np.testing.assert_allclose(got, np.stack(rows), rtol=1e-5, atol=1e-6)
  z = m.apply(v, x, LENGTHS, method="encode")                       # the model's own pooling: max
  head = v["params"]["head"]
  np.testing.assert_allclose(m.apply(v, x, LENGTHS), z @ head["kernel"] + head["bias"][None, :], atol=1e-5)
  with pytest.raises(ValueError, match="pooling: must be one of"):
    m.apply(v, x, LENGTHS, pooling="median", method="encode")


def test_cosine_neighbours_and_knn_against_brute_force():
  rng = np.random.default_rng(0)
  keys, queries = rng.standard_normal((30, 4)), rng.standard_normal((7, 4))
  labels = rng.integers(0, 3, 30)
  idx, sims = features.cosine_neighbours(queries, keys, 5)
  for q in range(7):
    cos = [queries[q] @ k / np.linalg.norm(queries[q]) / np.linalg.norm(k) for k in keys]
    order = sorted(range(30), key=lambda i: -cos[i])[:5]
    assert list(idx[q]) == order
    np.testing.assert_allclose(sims[q], [cos[i] for i in order], rtol=1e-12)
    votes = np.bincount(labels[order], minlength=3)
    assert features.knn_predict(queries[q:q + 1], keys, labels, 5)[0] == int(np.argmax(votes))
  np.testing.assert_allclose(features.cosine_neighbours(2.5 * keys[:3], keys, 1)[1][:, 0], 1.0)
  with pytest.raises(ValueError, match=r"k: must be in \[1, 30\]"):
    features.cosine_neighbours(queries, keys, 31)
  with pytest.raises(ValueError, match=r"keys_NH: expected H=4"):
    features.cosine_neighbours(queries, keys[:, :3], 1)


def test_linear_probe_reaches_the_bayes_rule_and_l2_shrinks_it():
  rng = np.random.default_rng(1)
  w = np.array([2.0, -1.0, 0.0])
  x = rng.standard_normal((400, 3)) * np.array([1.0, 3.0, 0.5]) + 4.0   # unstandardised on purpose
  y = (x @ w - 4.0 + 0.3 * rng.standard_normal(400) > 0).astype(np.int32)
  probe = features.fit_logistic(x[:300], y[:300], 2, l2=1e-4)
  assert np.mean(probe.predict(x[300:]) == y[300:]) > 0.9
  # The learned boundary points along w (in the original units: W / sd per feature).
  direction = (probe.W[:, 1] - probe.W[:, 0]) / probe.sd
  assert np.dot(direction, w) / np.linalg.norm(direction) / np.linalg.norm(w) > 0.97
  heavy = features.fit_logistic(x[:300], y[:300], 2, l2=10.0)
  assert np.linalg.norm(heavy.W) < 0.2 * np.linalg.norm(probe.W)
  best = features.select_probe((x[:300], y[:300]), (x[300:], y[300:]), 2, l2s=(1e-4, 100.0))
  assert best.l2 == 1e-4
  with pytest.raises(ValueError, match=r"y_N: expected one label per row"):
    features.fit_logistic(x, y[:10], 2, 1.0)


def test_experiment_encodes_every_sentence_and_scores_them(tmp_path):
  write_fake_data(tmp_path)
  config = sentiment_config.get_config("pooling=mean,smoke")
  examples = load_sentences(tmp_path / FOLDER)
  data = sentiment_task.prepare(config, examples)
  params = sentiment_task.make_task(config, examples).init_params(jax.random.key(0))
  encode = jax.jit(lambda p, x, lengths: data.model.apply({"params": p}, x, lengths, method="encode"))
  enc = {s: exp.encode_split(config, data, encode, params, s) for s in sentiment_task.SPLITS}
  assert {s: e.shape for s, e in enc.items()} == {"train": (48, 16), "valid": (6, 16), "test": (6, 16)}
  # Row i is sentence i of its split, whatever batch and padding it was encoded in.
  i = 3
  one = data.batch(config, "test", np.array([i]))
  np.testing.assert_allclose(enc["test"][i], encode(params, one["inputs"], one["lengths"])[0], atol=1e-6)
  row = exp.feature_scores(enc, data)
  assert set(row) >= {"knn1", "knn10", "probe_sentiment", "probe_source"}
  assert all(0.0 <= row[k] <= 1.0 for k in ("knn1", "knn10", "probe_sentiment", "probe_source"))
  assert "| mean | trained |" in exp.render([{"pooling": "mean", "encoder": "trained", "best_step": 3,
                                             "classifier_test_acc": 0.5, **row}])


@pytest.mark.slow
def test_experiment_end_to_end_on_made_up_data(tmp_path, monkeypatch):
  """The whole binary: three smoke trainings through the harness, the features, the table files."""
  from absl import flags
  write_fake_data(tmp_path)
  monkeypatch.setenv("RECURRENT_DATA_DIR", str(tmp_path))
  flags.FLAGS([__file__, "--config=configs/sentiment.py:smoke", f"--workdir={tmp_path / 'enc'}"])
  try:
    exp.main(["sentence_encodings"])
  finally:
    flags.FLAGS.unparse_flags()
  table = (tmp_path / "enc" / "table.md").read_text()
  assert all(f"| {p} | trained |" in table and f"| {p} | untrained |" in table for p in ("last", "mean", "max"))
  assert (tmp_path / "enc" / "neighbours.txt").read_text().count("## ") == 3
