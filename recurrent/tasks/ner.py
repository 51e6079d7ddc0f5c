"""Named-entity recognition on WNUT 2017 (Derczynski et al. 2017), many-to-many, scored by entity F1.

Shape legend: B batch, T time (tokens), C = 13 BIO tags over 6 entity types.

The tagger is the one POS tagging uses (``_tagging``: word + casing -> RNN ->
tag per token); the score is the CoNLL ``conlleval`` entity F1, computed
here in Python from its definition:

* a chunk (entity) starts at ``B-X``, or at ``I-X`` when the previous tag is
  ``O`` or of another type; it continues over the following ``I-X`` tags;
* a predicted entity is correct only if a gold entity has exactly the same
  start, end and type;
* precision = correct / predicted entities, recall = correct / gold entities,
  F1 = 2PR / (P + R) (0 when either is 0), pooled over the whole split.

The trainer evaluates the dev split (``emerging.dev.conll``) and keeps the
checkpoint with the best dev ``f1``; ``report`` adds dev precision/recall,
test F1 and accuracy (``emerging.test.annotated``), and returns
``test_samples.txt`` (test sentences with entities: word, gold, predicted).
"""

from __future__ import annotations


from recurrent.data.conll import NER_FILES, column, read_columns
from recurrent.data.paths import data_file
from recurrent.tasks._tagging import TaggingData, make_tagging_task, samples_text
from recurrent.tasks.base import Report, Task


def chunks(tags: list[str]) -> set[tuple[int, int, str]]:
  """The entities of a BIO sequence as (start, end exclusive, type), by conlleval's rules."""
  spans, start, typ = set(), None, None
  for i, tag in enumerate(list(tags) + ["O"]):
    prefix, _, t = tag.partition("-")
    if prefix not in ("B", "I", "O") or (prefix == "O") != (t == ""):
      raise ValueError(f"tags[{i}]: expected 'O', 'B-TYPE' or 'I-TYPE', got {tag!r}")
    begins = prefix == "B" or (prefix == "I" and (start is None or t != typ))
    if start is not None and (prefix == "O" or begins):
      spans.add((start, i, typ))
      start = None
    if begins:
      start, typ = i, t
  return spans


def entity_f1(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
  """conlleval's precision, recall and F1 over sentences (exact span and type match)."""
  if len(gold) != len(pred):
    raise ValueError(f"pred: expected {len(gold)} sentences, got {len(pred)}")
  correct = num_gold = num_pred = 0
  for s, (g, p) in enumerate(zip(gold, pred)):
    if len(g) != len(p):
      raise ValueError(f"pred[{s}]: expected {len(g)} tags, got {len(p)}")
    gs, ps = chunks(g), chunks(p)
    correct += len(gs & ps)
    num_gold += len(gs)
    num_pred += len(ps)
  precision = correct / num_pred if num_pred else 0.0
  recall = correct / num_gold if num_gold else 0.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return {"precision": precision, "recall": recall, "f1": f1}


def make_task(config, splits: dict) -> Task:
  """The task on {'train'|'valid'|'test': (words, tags)} (tests pass made-up sentences)."""
  data = TaggingData(splits, config.task.min_count)

  def report(params, predict, step):
    dev = entity_f1(data.tags["valid"], predict(params, "valid"))
    test_pred = predict(params, "test")
    test = entity_f1(data.tags["test"], test_pred)
    out = Report(scalars={**dev, "test_f1": test["f1"], "test_precision": test["precision"],
                          "test_recall": test["recall"]})
    if config.task.num_samples:
      with_entities = [i for i, tags in enumerate(data.tags["test"]) if chunks(tags)]
      pick = with_entities[:config.task.num_samples]
      out.texts["test_samples.txt"] = samples_text(
          [data.words["test"][i] for i in pick], [data.tags["test"][i] for i in pick],
          [test_pred[i] for i in pick], len(pick), step)
    return out

  return make_tagging_task(config, data, "f1", "max", report)


def build(config) -> Task:
  splits = {}
  for split, rel in NER_FILES.items():
    sents = read_columns(data_file(config.task.data_dir, rel), 2)
    splits[split] = (column(sents, 0), column(sents, 1))
  return make_task(config, splits)
