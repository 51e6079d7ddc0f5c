"""Trains one model on the adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values of a length-T sequence, with the general trainer.

    ./launch.sh adding                                      # experiments.train on this config
    ./launch.sh adding --config.model.cell=rnn --config.task.delay=20
    python -m experiments.train --config=configs/adding.py:smoke --workdir=/tmp/adding

The task module is recurrent/tasks/adding.py; the held-out loss is to be read
against the memoryless baseline it states. For gradient norms against
distance, cell by cell, run the gradient lab: ./launch.sh gradient_decay
--config.task.name=adding.
"""

from configs import base


def long_range_config(task_name: str, cell: str, arg=None):
  """The config shared by the three long-range tasks (adding, copy_memory, first_token)."""
  config = base.base_config()
  config.task = base.long_range_task(task_name, delay=50, num_eval_batches=8)  # drawn once from the seed

  config.model.cell = cell
  config.model.hidden_sizes = (64,)

  config.optim.name = "adam"
  config.optim.learning_rate = 3e-3
  config.optim.clip_norm = 1.0         # clip by global norm (Pascanu et al. 2013)

  config.batch_size = 32
  config.num_steps = 3000
  config.log_every = 100
  config.eval_every = 500
  config.checkpoint_every = 1000
  config.keep_checkpoints = 2
  return base.finalize(config, arg)


def get_config(arg=None):
  return long_range_config("adding", "lstm", arg)
