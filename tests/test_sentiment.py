"""Sentiment data (parsing pitfalls, tokens, vocabulary, stratified split) and the task's smoke steps."""

import jax.numpy as jnp
import numpy as np
import pytest

from configs import sentiment as sentiment_config
from recurrent.data import sentiment
from recurrent.data.vocab import Vocab
from recurrent.tasks import sentiment as sentiment_task
from recurrent.training import reports
from smoke_steps import train_steps


def test_parse_lines_splits_on_newline_only_and_keeps_quotes():
  text = 'A "quoted, unbalanced film\u0085 really.  \t1\nBad.\t0\n\nok \t 1\n'
  ex = sentiment.parse_lines(text, "imdb", "f.txt")
  assert [e.label for e in ex] == [1, 0, 1]
  assert ex[0].text == 'A "quoted, unbalanced film\u0085 really.'  # U+0085 is not a line break here
  assert ex[2].text == "ok" and ex[0].source == "imdb"
  with pytest.raises(ValueError, match=r"f.txt:2"):
    sentiment.parse_lines("good\t1\nno label here\n", "yelp", "f.txt")
  with pytest.raises(ValueError, match=r"f.txt:1"):
    sentiment.parse_lines("good\t2\n", "yelp", "f.txt")


def test_tokenize():
  assert sentiment.tokenize("I didn't like it, AT ALL!!") == ["i", "didn't", "like", "it", ",", "at", "all", "!", "!"]


def test_vocab_round_trips_and_maps_rare_words_to_unk():
  vocab = Vocab.build([["b", "a", "b"], ["c", "b", "a"]], min_count=2)
  assert vocab.itos == ["<pad>", "<unk>", "b", "a"]   # by frequency, then by string
  ids = vocab.encode(["a", "b", "zzz", "c"])
  np.testing.assert_array_equal(ids, [3, 2, 1, 1])
  assert vocab.decode(vocab.encode(["b", "a"])) == ["b", "a"]


def test_stratified_split_is_disjoint_complete_proportional_and_deterministic():
  strata = [("imdb", i % 2) for i in range(40)] + [("yelp", i % 2) for i in range(20)]
  parts = sentiment.stratified_split(strata, (0.8, 0.1, 0.1), seed=3)
  flat = np.concatenate(parts)
  assert sorted(flat.tolist()) == list(range(60))            # disjoint and complete
  assert [len(p) for p in parts] == [48, 6, 6]
  for key, n in ((("imdb", 0), 20), (("imdb", 1), 20), (("yelp", 0), 10), (("yelp", 1), 10)):
    counts = [sum(strata[i] == key for i in p) for p in parts]
    assert counts == [round(0.8 * n), round(0.9 * n) - round(0.8 * n), n - round(0.9 * n)]
  again = sentiment.stratified_split(strata, (0.8, 0.1, 0.1), seed=3)
  assert all(np.array_equal(a, b) for a, b in zip(parts, again))
  other = sentiment.stratified_split(strata, (0.8, 0.1, 0.1), seed=4)
  assert not np.array_equal(parts[1], other[1])
  with pytest.raises(ValueError, match="fractions"):
    sentiment.stratified_split(strata, (0.8, 0.3), seed=0)


def write_fake_data(folder):
  """Tiny files in the UCI layout: 'good/great' sentences are positive, 'bad/awful' negative."""
  rng = np.random.default_rng(0)
  d = folder / sentiment.FOLDER
  d.mkdir(parents=True)
  for source, name in sentiment.FILES.items():
    lines = []
    for i in range(20):
      label = i % 2
      words = list(rng.choice(["the", "film", "phone", "was", "food", "quite"], size=rng.integers(1, 6)))
      words.insert(int(rng.integers(0, len(words) + 1)), ["bad", "good", "awful", "great"][label + 2 * (i % 4 >= 2)])
      lines.append(" ".join(words) + ".\t" + str(label))
    (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("arg", ["pooling=max,bidirectional,smoke"])
def test_smoke_steps_and_report(tmp_path, arg):
  write_fake_data(tmp_path)
  config = sentiment_config.get_config(arg)
  config.task.data_dir = str(tmp_path)
  task = sentiment_task.build(config)
  batch = task.train_batch(0)
  assert batch["inputs"].shape == (8, 16) and batch["inputs"].dtype == np.int32
  assert (batch["inputs"][np.arange(16)[None, :] >= batch["lengths"][:, None]] == 0).all()  # padding id 0
  params, losses = train_steps(task, config, 3)
  report = task.report(params, 3)
  reports.write(report, tmp_path)
  assert 0.0 <= report.scalars["test_accuracy"] <= 1.0
  lines = (tmp_path / "test_predictions.txt").read_text().splitlines()
  assert len(lines) == 1 + 6                      # header + the 6 test sentences (10% of 60)
  assert config.model.pooling == arg.split(",")[0].split("=")[1]


def test_empty_eval_rows_count_for_nothing():
  logits = jnp.array([[2.0, 0.0], [0.0, 3.0], [5.0, -5.0]])
  loss, m = sentiment_task.classification_metrics(logits, jnp.array([0, 0, -1]))
  assert float(m["accuracy"][0]) == 1 and float(m["accuracy"][1]) == 2
  expect = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(3.0))) / 2
  np.testing.assert_allclose(float(loss), expect, rtol=1e-6)


def test_config_variants_and_sweep(tmp_path, monkeypatch):
  config = sentiment_config.get_config("pooling=mean,bidirectional")
  assert config.model.pooling == "mean" and config.model.bidirectional
  with pytest.raises(ValueError, match="pooling"):
    sentiment_config.get_config("pooling=attention")
  sweep = sentiment_config.get_sweep()
  assert sweep == {"model.pooling": ["last", "mean", "max"], "model.bidirectional": [False, True]}
  monkeypatch.setenv("RECURRENT_DATA_DIR", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="sentiment_labelled_sentences"):
    sentiment_task.build(sentiment_config.get_config("smoke"))


def test_vocab_cap_counts_the_specials_and_decode_stops_at_the_stop_token():
  specials = ("<pad>", "<bos>", "<eos>", "<unk>")
  vocab = Vocab.build([["x", "y", "y", "z", "z", "z"]], specials=specials, max_size=6)
  assert vocab.itos == ["<pad>", "<bos>", "<eos>", "<unk>", "z", "y"] and vocab.unk_id == 3
  assert vocab.decode([4, 5, 2, 4], stop="<eos>") == ["z", "y"]
  assert vocab.decode([4, 5, 2, 4]) == ["z", "y", "<eos>", "z"]
  with pytest.raises(ValueError, match="max_size: must be > 4"):
    Vocab.build([["x"]], specials=specials, max_size=4)


@pytest.mark.parametrize("field, value", [("task.bucket", -1), ("task.eval_batch_size", 0),
                                          ("task.max_len", 0), ("model.embed_size", 0)])
def test_bad_values_fail_naming_the_field_before_training(tmp_path, field, value):
  """Found by trying bad values of every field (issue 18): a gather error, a division by zero, or
  the message of another field (eval_batch_size reported as 'batch_size')."""
  from recurrent.training import loop
  write_fake_data(tmp_path)
  config = sentiment_config.get_config("smoke")
  config.task.data_dir = str(tmp_path)
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=field.replace(".", r"\.") if section == "task" else name):
    loop.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run" / "config.json").exists()


def test_config_intervals_follow_batch_size_and_epochs():
  from configs import sentiment as sentiment_config
  config = sentiment_config.get_config()
  assert (config.num_steps, config.eval_every, config.log_every, config.checkpoint_every) == (1500, 75, 75, 750)
  config.batch_size, config.task.epochs = 50, 4    # 2,400 // 50 = 48 steps per epoch
  assert (config.num_steps, config.eval_every, config.log_every, config.checkpoint_every) == (192, 48, 48, 480)
