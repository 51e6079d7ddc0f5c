"""Trains one model on copy memory (Arjovsky et al. 2016): reproduce 10 symbols after a gap of T blanks, with the general trainer.

    ./launch.sh copy_memory                                      # experiments.train on this config
    ./launch.sh copy_memory --config.model.cell=rnn --config.task.delay=20
    python -m experiments.train --config=configs/copy_memory.py:smoke --workdir=/tmp/copy_memory

The task module is recurrent/tasks/copy_memory.py; the held-out loss is to be read
against the memoryless baseline it states. For gradient norms against
distance, cell by cell, run the gradient lab: ./launch.sh gradient_decay
--config.task.name=copy_memory.
"""

from configs.adding import long_range_config


def get_config(arg=None):
  return long_range_config("copy_memory", "lstm", arg)
