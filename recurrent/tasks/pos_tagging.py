"""Part-of-speech tagging on UD English EWT v2.0 (Silveira et al. 2014), many-to-many, scored by accuracy.

Shape legend: B batch, T time (tokens), C tags (17 UPOS or 50 XPOS).

The tagger (``_tagging``): lowercased word embedding + casing one-hot -> RNN
(uni- or bidirectional) -> a tag distribution per token; the loss is the
cross-entropy per real token and accuracy counts real tokens only (padding
excluded). The trainer evaluates the dev split; ``report`` adds test
accuracy and returns ``test_samples.txt`` (word, gold, predicted).
"""

from __future__ import annotations


from recurrent.data.conll import POS_FILES, column, read_columns
from recurrent.data.paths import data_file
from recurrent.tasks._tagging import TaggingData, make_tagging_task, samples_text
from recurrent.tasks.base import Report, Task

TAGSETS = {"upos": 1, "xpos": 2}  # the column of each tag set in the files


def make_task(config, splits: dict) -> Task:
  """The task on {'train'|'valid'|'test': (words, tags)} (tests pass made-up sentences)."""
  data = TaggingData(splits, config.task.min_count)

  def report(params, predict, step):
    out = Report()
    if config.task.num_samples:
      n = config.task.num_samples
      out.texts["test_samples.txt"] = samples_text(data.words["test"][:n], data.tags["test"][:n],
                                                   predict(params, "test")[:n], n, step)
    return out

  return make_tagging_task(config, data, "accuracy", "max", report)


def build(config) -> Task:
  if config.task.tagset not in TAGSETS:
    raise ValueError(f"task.tagset: must be one of {sorted(TAGSETS)}, got {config.task.tagset!r}")
  splits = {}
  for split, rel in POS_FILES.items():
    sents = read_columns(data_file(config.task.data_dir, rel), 3)
    splits[split] = (column(sents, 0), column(sents, TAGSETS[config.task.tagset]))
  return make_task(config, splits)
