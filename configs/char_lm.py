"""A character language model of The Adventures of Sherlock Holmes: bits per character and samples.

    ./launch.sh char_lm                                  # LSTM, 128 units, 1500 steps of 32 x 64 bytes
    ./launch.sh char_lm --config.model.cell=gru
    python -m experiments.train --config=configs/char_lm.py:smoke --workdir=/tmp/char_lm

The book is ``$RECURRENT_DATA_DIR/sherlock_holmes/1661-0.txt`` unless
``--config.task.path=...``; the held-out split is its last 10%. Training is
stateful truncated BPTT over 32 contiguous streams of the training part
(windows of ``seq_len`` bytes, the state carried between windows), the same
code path as the word-level models of configs/ptb.py. The eval metric ``nll``
(nats per byte; ``bpc`` = nll / ln 2 is reported beside it: a uniform guess
over bytes is 8 bits, over the book's ~90 characters 6.5) is scored with the
state carried over the whole held-out part; samples at temperatures 0.5 and
1.0 after ``task.prompt`` go to ``<workdir>/samples.txt`` at each evaluation.
"""

from configs import base


def get_config(arg=None):
  config = base.base_config()
  config.task.name = "char_lm"
  config.task.path = ""                 # the book; "" = $RECURRENT_DATA_DIR/sherlock_holmes/1661-0.txt
  config.task.ascii_typography = True   # curly quotes -> ' and ", em dash -> --
  config.task.held_out_fraction = 0.1   # the book's last 10% (by position)
  config.task.seq_len = 64              # bytes per training window (truncated BPTT length)
  config.task.eval_streams = 1          # the held-out part read as one stream, the state carried
  config.task.sum_over_time = False     # the differentiated loss: mean nll per byte
  config.task.prompt = '"My dear Watson," said Holmes, "'
  config.task.temperatures = (0.5, 1.0)  # 0 = greedy (the argmax byte)
  config.task.sample_len = 300          # bytes sampled after the prompt

  config.model.cell = "lstm"
  config.model.hidden_sizes = (128,)    # sized for a CPU budget of ~10 minutes
  config.model.bidirectional = False    # a language model reads left to right
  config.model.merge = "concat"
  config.model.dropout = 0.0            # non-recurrent connections: embedding out, between layers, output
  config.model.residual = False
  config.model.embed_size = 64          # byte embedding size
  config.model.init_scale = 0.0         # > 0: every parameter ~ U(-s, s); 0: each part's initialiser
  config.model.variational = False      # one dropout mask per window
  config.model.embed_dropout = 0.0      # drop whole bytes of the embedding
  config.model.tie_weights = False      # softmax weights = embedding (needs embed_size = last hidden)

  config.optim.name = "adam"
  config.optim.learning_rate = 2e-3
  config.optim.schedule = "cosine"
  config.optim.clip_norm = 1.0

  config.batch_size = 32
  config.num_steps = 1500
  config.log_every = 100
  config.eval_every = 500
  config.checkpoint_every = 500
  config.keep_checkpoints = 1
  return base.finalize(config, arg, smoke=[shrink])


def shrink(config):
  config.task.seq_len = 16
  config.task.sample_len = 20
  config.model.embed_size = 8
