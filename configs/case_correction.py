"""Seed 004's case-correction demo: restore the capitals of lowercased Sherlock Holmes, byte by byte.

    ./launch.sh case_correction                                    # tanh RNN, 32 units, 10 epochs
    ./launch.sh case_correction --config=configs/case_correction.py:cell=gru,bidirectional
    ./launch.sh sweep configs/case_correction.py --workdir=runs/case_sweep   # cells x directions
    python -m experiments.train --config=configs/case_correction.py:smoke --workdir=/tmp/case

Variants (comma-separated): ``cell=rnn|gru|lstm``, ``bidirectional``, ``encoder_decoder``
(seed 004's encoder-decoder with attention, greedy-decoded metrics), ``smoke``.
The book is ``$RECURRENT_DATA_DIR/sherlock_holmes/1661-0.txt`` unless
``--config.task.path=...``. Expect the held-out byte accuracy to pass 99%
and the fixed sentence (``<workdir>/fixed_sentence.txt``, one line per
epoch) to go from padding bytes to "... "It may be so, or it may not, mr.
Holmes," ...": a unidirectional model cannot know that the "m" of "mr."
starts a title, a bidirectional one can.

``num_steps`` (epochs x steps per epoch), ``eval_every`` and ``checkpoint_every``
(once per epoch) follow ``--config.task.epochs``, ``--config.batch_size``,
``--config.task.min_len/max_len`` and ``--config.task.train_bytes`` (``derive_steps``).
"""

from configs import base
from recurrent.data import text

CELLS = ("rnn", "gru", "lstm")
# Bytes of 1661-0.txt after ascii_typography, less the 10% held out (recurrent.data.text); another
# task.path, held_out_fraction or ascii_typography changes it, and the steps per epoch are then off.
TRAIN_BYTES = 506_211


def get_config(arg=None):
  config = base.base_config()
  config.task.name = "case_correction"
  config.task.path = ""                    # the book; "" = $RECURRENT_DATA_DIR/sherlock_holmes/1661-0.txt
  config.task.ascii_typography = True      # curly quotes -> ' and ", em dash -> -- (the seed's ASCII text)
  config.task.held_out_fraction = 0.1      # the book's last 10% (by position) is the held-out split
  config.task.train_bytes = 0              # train on the first N bytes of the training part; 0 = all
  config.task.min_len = 10                 # crop lengths, uniform in [min_len, max_len] (the seed's 10-100)
  config.task.max_len = 100
  config.task.architecture = "tagger"      # one output per input byte, aligned
  config.task.epochs = 10                  # num_steps follows it (epochs x steps per epoch) unless set itself
  config.task.test_input = ('upon his pale face. "it may be so, or it may not, mr. holmes," said he, '
                            '"but if you are so very sharp')
  config.task.test_target = ('upon his pale face. "It may be so, or it may not, Mr. Holmes," said he, '
                             '"but if you are so very sharp')

  config.model.cell = "rnn"                # the seed's tanh RNN
  config.model.hidden_sizes = (32,)        # a 32-dimensional hidden state (per direction)
  config.model.bidirectional = False
  config.model.merge = "concat"
  config.model.dropout = 0.0
  config.model.residual = False

  config.optim.name = "adam"
  config.optim.learning_rate = 1e-3
  config.optim.schedule = "constant"
  config.optim.clip_norm = 0.0

  config.batch_size = 32
  config.num_steps = 0                     # derived below: epochs x steps per epoch (288 at B = 32)
  config.log_every = 48
  config.eval_every = 0                    # derived below: the fixed sentence after every epoch
  config.checkpoint_every = 0              # derived below: once per epoch
  config.keep_checkpoints = 1
  derive_steps(config)
  return base.finalize(config, arg, flags={"bidirectional": base.set_to("model.bidirectional", True),
                                           "encoder_decoder": encoder_decoder},
                       choices={"cell": base.choice_of("model.cell", CELLS)}, smoke=[shrink])


def derive_steps(config) -> None:
  """Steps per epoch = ceil(N / (B * (min_len + max_len) / 2)), the task's own epoch
  (``text.steps_per_epoch``), for the N = TRAIN_BYTES training bytes (or the first
  ``task.train_bytes``); num_steps, eval_every and checkpoint_every from it.

  Field references: overrides of ``batch_size``, ``task.min_len``, ``task.max_len``,
  ``task.train_bytes`` and ``task.epochs`` move them (setting num_steps, eval_every or
  checkpoint_every itself cuts its link), and a bad value of any of those fails naming it where
  num_steps is first read.
  """
  def per_epoch(train_bytes: int, batch_size: int, min_len: int, max_len: int) -> int:
    n = min(train_bytes, TRAIN_BYTES) if train_bytes else TRAIN_BYTES
    return text.steps_per_epoch(n, batch_size, min_len, max_len)

  steps = base.derive(per_epoch, base.int_ref(config, "task.train_bytes", least=0),
                      base.int_ref(config, "batch_size"), base.int_ref(config, "task.min_len"),
                      base.int_ref(config, "task.max_len"))
  config.num_steps = base.int_ref(config, "task.epochs") * steps
  config.eval_every = steps + 0         # new references: setting one field leaves the others
  config.checkpoint_every = steps + 0


def shrink(config):
  """The ``smoke`` part of this config: shorter crops, and a smaller encoder-decoder."""
  config.task.max_len = 20
  config.task.min_len = 5
  if config.task.architecture == "encoder_decoder":
    config.model.embed_size, config.model.decoder_sizes = 8, (16,)
    config.model.attn_size, config.model.output_size = 8, 16


def encoder_decoder(config):
  """Seed 004's encoder-decoder: a bidirectional encoder (32 per direction, ``model.cell``), a
  64-unit decoder with Bahdanau attention, byte tokens + PAD/BOS/EOS (``recurrent.seq2seq``)."""
  config.task.architecture = "encoder_decoder"
  config.model.bidirectional = True
  config.model.embed_size = 32           # learned byte embeddings (the tagger reads one-hot bytes)
  config.model.decoder_sizes = (64,)
  config.model.attention = "bahdanau"
  config.model.attn_size = 32
  config.model.output_size = 64
  config.model.input_feeding = False
  config.model.bridge = "auto"           # learned: tanh(W [h_fw; h_bw] + b)
  config.task.teacher_forcing_start = 1.0
  config.task.teacher_forcing_end = 1.0
  config.optim.learning_rate = 3e-3      # the seq2seq configs' optimizer: at the tagger's 1e-3 it
  config.optim.clip_norm = 1.0           # reaches 43% held-out byte accuracy after 5 epochs, 96% here


def get_sweep():
  """The comparison table: every cell, one direction and both."""
  return {"model.cell": list(CELLS), "model.bidirectional": [False, True]}
