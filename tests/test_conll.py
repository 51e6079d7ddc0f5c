"""Column files, the tagging data (vocabulary, casing, padding) and the POS and NER configs' smoke runs."""

import jax.numpy as jnp
import numpy as np
import pytest

from configs import ner as ner_config
from configs import pos as pos_config
from recurrent.data import conll
from recurrent.tasks import _tagging
from recurrent.tasks import ner as ner_task
from recurrent.tasks import pos_tagging
from recurrent.training.loop import train_and_evaluate
from recurrent.training import reports
from smoke_steps import train_steps

UD_TEXT = "The\tDET\tDT\nCat\tPROPN\tNNP\n\n\nsat\tVERB\tVBD\n.\tPUNCT\t.\n\n"


def test_parse_columns_blank_and_tab_only_separators():
  sents = conll.parse_columns(UD_TEXT, 3)
  assert sents == [[("The", "DET", "DT"), ("Cat", "PROPN", "NNP")], [("sat", "VERB", "VBD"), (".", "PUNCT", ".")]]
  assert conll.column(sents, 1) == [["DET", "PROPN"], ["VERB", "PUNCT"]]
  wnut = "@paul\tO\nESB\tB-location\n\t\nhi\tO"   # WNUT separates some sentences by a lone TAB, no final newline
  assert conll.parse_columns(wnut, 2) == [[("@paul", "O"), ("ESB", "B-location")], [("hi", "O")]]
  with pytest.raises(ValueError, match=r"f.txt:2: expected 3"):
    conll.parse_columns("a\tB\tC\nb\tB\n", 3, "f.txt")


def test_casing_classes():
  assert [_tagging.CASINGS[_tagging.casing(w)] for w in ["the", "The", "NASA", "R2D2", ",", "iPhone", "A"]] == [
      "lower", "title", "upper", "digit", "other", "other", "upper"]


def make_splits(seed, tagset):
  """Made-up sentences: tags are a function of the word (plus one tag only seen in context)."""
  rng = np.random.default_rng(seed)
  lexicon = {"Paris": "B-location", "York": "I-location", "Obama": "B-person", "the": "O", "went": "O",
             "to": "O", "New": "B-location", "today": "O"}
  words = list(lexicon)
  splits = {}
  for split, n in (("train", 24), ("valid", 6), ("test", 6)):
    ws = [[str(w) for w in rng.choice(words, size=int(rng.integers(1, 9)))] for _ in range(n)]
    tags = [[lexicon[w] if tagset == "ner" else ("NOUN" if w[0].isupper() else "VERB") for w in s] for s in ws]
    splits[split] = (ws, tags)
  return splits


def test_tagging_data_encodes_and_batches_pad_correctly():
  splits = make_splits(0, "ner")
  data = _tagging.TaggingData(splits, min_count=1)
  s = 3
  assert data.vocab.decode(data.word_ids["train"][s]) == [w.lower() for w in splits["train"][0][s]]
  assert data.tag_vocab.decode(data.tag_ids["train"][s]) == splits["train"][1][s]
  bad = {k: (w, [list(t) for t in tags]) for k, (w, tags) in splits.items()}
  bad["test"][1][0][0] = "B-never-seen"
  with pytest.raises(ValueError, match="not seen in training"):
    _tagging.TaggingData(bad, min_count=1)


def test_token_metrics_exclude_padding():
  logits = jnp.array([[[3.0, 0.0], [0.0, 3.0], [9.0, 0.0]]])  # third step is padding
  loss, m = _tagging.token_metrics(logits, jnp.array([[0, 0, 1]]), jnp.array([2]))
  assert float(m["accuracy"][0]) == 1 and float(m["accuracy"][1]) == 2
  expect = (np.log1p(np.exp(-3.0)) + np.log1p(np.exp(3.0))) / 2
  np.testing.assert_allclose(float(loss), expect, rtol=1e-6)


def write_files(folder, files, splits, tagset):
  for split, rel in files.items():
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for ws, ts in zip(*splits[split]):
      lines += [f"{w}\t{t}\tXX" if tagset == "pos" else f"{w}\t{t}" for w, t in zip(ws, ts)] + [""]
    path.write_text("\n".join(lines) + "\n")


def test_ner_smoke_trains_through_the_harness(tmp_path):
  write_files(tmp_path / "data", conll.NER_FILES, make_splits(1, "ner"), "ner")
  config = ner_config.get_config("bidirectional,smoke")
  config.task.data_dir = str(tmp_path / "data")
  final = train_and_evaluate(config, tmp_path / "run")
  assert final["step"] == config.num_steps
  assert {"f1", "precision", "recall", "test_f1", "accuracy", "test_accuracy"} <= set(final["eval"])
  assert 0.0 <= final["eval"]["f1"] <= 1.0
  samples = (tmp_path / "run" / "test_samples.txt").read_text().splitlines()
  assert samples[0].startswith(f"# step {config.num_steps}")


def test_pos_smoke_steps_and_predictions(tmp_path):
  splits = make_splits(2, "pos")
  write_files(tmp_path / "data", conll.POS_FILES, splits, "pos")
  config = pos_config.get_config("smoke")
  config.task.data_dir = str(tmp_path / "data")
  task = pos_tagging.build(config)
  batch = task.train_batch(0)
  mask = np.arange(batch["words"].shape[1])[None, :] < batch["lengths"][:, None]
  assert (batch["words"][~mask] == 0).all() and (batch["words"][mask] != 0).all()
  params, _ = train_steps(task, config, 3)
  report = task.report(params, 3)
  reports.write(report, tmp_path)
  assert 0.0 <= report.scalars["test_accuracy"] <= 1.0
  lines = (tmp_path / "test_samples.txt").read_text().split("\n")
  words = [l.split("\t")[0] for l in lines[1:] if l]
  assert words == [w for s in splits["test"][0][:config.task.num_samples] for w in s]


def test_pos_and_ner_configs(tmp_path, monkeypatch):
  assert pos_config.get_config("bidirectional").model.bidirectional
  assert not ner_config.get_config().model.bidirectional
  assert ner_config.get_sweep() == {"model.bidirectional": [False, True]}
  bad = pos_config.get_config("smoke")
  bad.task.tagset = "ptb"
  with pytest.raises(ValueError, match="task.tagset"):
    pos_tagging.build(bad)
  monkeypatch.setenv("RECURRENT_DATA_DIR", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="wnut17train.conll"):
    ner_task.build(ner_config.get_config("smoke"))
