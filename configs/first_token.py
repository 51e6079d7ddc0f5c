"""Trains one model on first token: after T random symbols and a query, predict the first symbol, with the general trainer.

    ./launch.sh first_token                                      # experiments.train on this config
    ./launch.sh first_token --config.model.cell=rnn --config.task.delay=20
    python -m experiments.train --config=configs/first_token.py:smoke --workdir=/tmp/first_token

The task module is recurrent/tasks/first_token.py; the held-out loss is to be read
against the memoryless baseline it states. For gradient norms against
distance, cell by cell, run the gradient lab: ./launch.sh gradient_decay
--config.task.name=first_token.
"""

from configs.adding import long_range_config


def get_config(arg=None):
  return long_range_config("first_token", "gru", arg)
