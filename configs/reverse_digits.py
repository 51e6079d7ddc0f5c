"""Reverse a digit string with an attention seq2seq (the fast synthetic check of issue 5).

    ./launch.sh reverse_digits                                   # a few minutes on 2 CPU cores
    ./launch.sh reverse_digits --config=configs/reverse_digits.py:attention=luong_general
    python -m experiments.train --config=configs/reverse_digits.py:smoke --workdir=/tmp/rev

Expect greedy and beam exact match above 0.99 on 1000 held-out strings of 3 to
10 digits; each evaluation prints both and the beam-search error analysis.
"""

from configs import _seq2seq


def get_config(arg=None):
  config = _seq2seq.seq2seq_config()
  config.task.name = "reverse_digits"
  config.task.min_len = 3              # digits per string, uniform in [min_len, max_len]
  config.task.max_len = 10
  config.task.num_test = 1000          # held-out strings
  config.model.hidden_sizes = (64,)
  config.model.decoder_sizes = (128,)
  config.decode.max_len = 12           # max_len + EOS, with room to spare
  config.batch_size = 64
  config.num_steps = 1500
  config.log_every = 100
  config.eval_every = 500
  config.checkpoint_every = 500
  config.keep_checkpoints = 1
  return _seq2seq.finalize(config, arg)
