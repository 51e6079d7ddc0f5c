"""Part-of-speech tagging on UD English EWT (17 UPOS tags): uni- vs bidirectional LSTM tagger.

    ./launch.sh pos                                                    # unidirectional
    ./launch.sh pos --config=configs/pos.py:bidirectional --workdir=runs/pos_bi
    ./launch.sh sweep configs/pos.py --workdir=runs/pos_sweep          # uni and bi
    python -m experiments.train --config=configs/pos.py:smoke --workdir=/tmp/pos

Variants: ``bidirectional``, ``smoke``. Data: $RECURRENT_DATA_DIR/ud_english_ewt_pos
(or --config.task.data_dir). The metric is token accuracy on the dev split
(padding excluded); ``test_accuracy`` is logged next to it at every
evaluation and ``test_samples.txt`` shows tagged test sentences. A
unidirectional tagger sees only the words before each token; the
bidirectional one sees the whole sentence.
"""

from configs import base


def tagging_config():
  """The fields POS tagging and NER share (configs/ner.py starts from this)."""
  config = base.base_config()
  config.task.data_dir = ""            # folder like shared/data; "" = $RECURRENT_DATA_DIR
  config.task.min_count = 2            # lowercased words seen fewer times in train become <unk>
  config.task.max_len = 160            # tokens per sentence; covers every sentence (no cutting)
  config.task.bucket = 32              # pad each batch's time axis to a multiple of this
  config.task.eval_batch_size = 128    # sentences per evaluation batch
  config.task.num_samples = 5          # test sentences written to test_samples.txt

  config.model.cell = "lstm"
  config.model.hidden_sizes = (64,)
  config.model.bidirectional = False
  config.model.embed_size = 64

  config.optim.name = "adam"
  config.optim.learning_rate = 2e-3
  config.optim.clip_norm = 1.0

  config.batch_size = 32
  config.log_every = 100
  config.keep_checkpoints = 1
  return config


def get_config(arg=None):
  config = tagging_config()
  config.task.name = "pos_tagging"
  config.task.tagset = "upos"          # upos (17 tags) | xpos (50 PTB tags)
  config.num_steps = 1000              # about 2.5 epochs of the 12,543 training sentences (a CPU budget)
  config.eval_every = 250
  config.checkpoint_every = 1000
  return finalize_tagging(config, arg)


def finalize_tagging(config, arg):
  """``base.finalize`` with the tagging variants: ``bidirectional``, and ``smoke`` shrinks evaluation too."""
  return base.finalize(config, arg, flags={"bidirectional": base.set_to("model.bidirectional", True)},
                       smoke=[shrink_tagging])


def shrink_tagging(config):
  config.task.eval_batch_size = 8
  config.model.embed_size = 8


def get_sweep():
  """Uni vs bidirectional: ./launch.sh sweep configs/pos.py --workdir=runs/pos_sweep."""
  return {"model.bidirectional": [False, True]}
