"""Seed 002: predict the next value of sin(t) from a window of 25 values (many-to-one regression).

    ./launch.sh sine                                   # tanh RNN, hidden 128 (the seed's setup)
    ./launch.sh sine --config.model.cell=lstm          # any cell of recurrent.cells.CELLS
    python -m experiments.train --config=configs/sine.py:smoke --workdir=/tmp/sine

Expect the held-out MSE to fall below 1e-3 within 2000 steps (a few tens of
seconds on a CPU); the workdir gets ``sine_predictions.png`` (prediction vs
actual on the 75 held-out windows) and ``loss_curve.png``.
"""

from configs import base


def get_config(arg=None):
  config = base.base_config()
  config.task.name = "sine"
  config.task.window = 25          # values per input window (the seed's time_steps)
  config.task.train_size = 250     # training series sin(0..249): 225 windows
  config.task.test_size = 400      # held-out series sin(0..399) ...
  config.task.test_start = 300     # ... from its window 300 on: 75 windows unseen in training

  config.model.cell = "rnn"        # the seed's vanilla tanh RNN
  config.model.hidden_sizes = (128,)

  config.optim.name = "adam"
  config.optim.learning_rate = 3e-3
  config.optim.schedule = "cosine"
  config.optim.clip_value = 1.0    # the seed clips every gradient entry to [-1, 1]

  config.batch_size = 32
  config.num_steps = 2000
  config.log_every = 100
  config.eval_every = 250
  config.checkpoint_every = 500
  config.keep_checkpoints = 2
  return base.finalize(config, arg)


def get_sweep():
  """Every cell at two learning rates: ./launch.sh sweep configs/sine.py --workdir=runs/sine_sweep."""
  return {"model.cell": ["rnn", "lstm", "gru"], "optim.learning_rate": [1e-3, 3e-3]}
