"""Word-level language modelling of Penn Treebank or WikiText-2 with stateful truncated BPTT.

Shape legend: B streams, T window, V vocabulary.

The corpus is a folder of three whitespace-tokenised files (``FILES``), each
line ending in ``<eos>`` (``recurrent.data.stream``); the vocabulary is every
word of the training file (PTB: 10,000; WikiText-2: 33,278), and valid/test
must be covered by it. Training, evaluation with the state carried over the
whole split, perplexity and samples are ``recurrent.tasks._lm``'s, shared with
the character LM.
"""

from __future__ import annotations

import numpy as np

from recurrent.checks import check_int
from recurrent.data import stream, text
from recurrent.tasks._lm import make_model, stream_lm_task
from recurrent.tasks.base import Task

FILES = {  # corpus -> (folder under $RECURRENT_DATA_DIR, train, valid, test file names)
    "ptb": ("ptb", "ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
    "wikitext2": ("wikitext2", "train.txt", "valid.txt", "test.txt"),
}


def load(corpus: str, folder: str = ""):
  """(vocab, {split: ids}) of a corpus; ``folder`` "" = $RECURRENT_DATA_DIR/<corpus's folder>."""
  if corpus not in FILES:
    raise ValueError(f"task.corpus: must be one of {sorted(FILES)}, got {corpus!r}")
  sub, *names = FILES[corpus]
  root = text.resolve_path(folder, sub)
  words = {split: stream.read_words(root / name) for split, name in zip(("train", "valid", "test"), names)}
  vocab = stream.build_vocab(words["train"])
  ids = {split: stream.encode(w, vocab, f"{split} split ({root / name})")
         for (split, w), name in zip(words.items(), names)}
  return vocab, ids


def build(config) -> Task:
  t = config.task
  check_int("task.epochs", t.epochs)
  vocab, ids = load(t.corpus, t.path)
  prompt = t.prompt.split()
  if not prompt:
    raise ValueError("task.prompt: must hold at least one word, got ''")
  missing = [w for w in prompt if w not in vocab.stoi]
  if missing:
    raise ValueError(f"task.prompt: words not in the {t.corpus} vocabulary: {missing}")
  prompt_ids = np.array([vocab.stoi[w] for w in prompt], np.int32)

  def detokenize(ids_):
    return "".join("\n" if w == stream.EOS else " " + w for w in vocab.decode(ids_))

  model = make_model(config.model, len(vocab))
  return stream_lm_task(config, model, ids["train"], ids["valid"], ids["test"], prompt_ids,
                        detokenize, bits_name="bits_per_word")
