"""Named-entity recognition on WNUT 2017 (6 entity types, BIO): uni- vs bidirectional LSTM tagger, entity F1.

    ./launch.sh ner                                                    # unidirectional
    ./launch.sh ner --config=configs/ner.py:bidirectional --workdir=runs/ner_bi
    ./launch.sh sweep configs/ner.py --workdir=runs/ner_sweep          # uni and bi
    python -m experiments.train --config=configs/ner.py:smoke --workdir=/tmp/ner

Variants: ``bidirectional``, ``smoke``. Data: $RECURRENT_DATA_DIR/wnut17_ner (or
--config.task.data_dir). The metric is the conlleval entity F1 on the dev
split (exact span and type; the checkpoint with the best dev F1 is kept);
``test_f1`` is logged next to it and ``test_samples.txt`` shows test
sentences with gold and predicted tags. WNUT 2017 is hard by design (rare,
emerging entities; the shared task's best systems scored about 0.40-0.42
entity F1 on test with far richer features), so expect low numbers from a
word-level tagger trained on 3,394 sentences.
"""

from configs.pos import finalize_tagging, tagging_config


def get_config(arg=None):
  config = tagging_config()
  config.task.name = "ner"
  config.num_steps = 1000              # about 9 epochs of the 3,394 training sentences
  config.eval_every = 250
  config.checkpoint_every = 500
  return finalize_tagging(config, arg)


def get_sweep():
  """Uni vs bidirectional: ./launch.sh sweep configs/ner.py --workdir=runs/ner_sweep."""
  return {"model.bidirectional": [False, True]}
