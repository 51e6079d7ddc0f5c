"""Polyphonic music modelling on JSB Chorales: tanh RNN vs GRU vs LSTM at about 20K parameters (Chung et al. 2014).

    ./launch.sh music                                   # LSTM, 36 units, on JSB Chorales
    ./launch.sh music --config=configs/music.py:cell=gru --workdir=runs/music_gru
    ./launch.sh sweep configs/music.py --workdir=runs/music_sweep   # 3 cells x 3 learning rates
    python -m experiments.train --config=configs/music.py:cell=rnn,smoke --workdir=/tmp/music

Variants (comma-separated after the colon): ``cell=rnn|gru|lstm`` sets the
cell and its size (100 / 46 / 36 units, as in Chung et al. 2014);
``dataset=jsb|nottingham|musedata|piano`` picks the Boulanger-Lewandowski
set (the long-piece sets train on random 200-step windows); ``smoke``.
The metric is the negative log-likelihood per time step (nats, summed over
the 88 notes) on the valid split; ``report`` adds train and test NLL and
``music_prediction.png``. Data: $RECURRENT_DATA_DIR/polyphonic_music/*.mat
or --config.task.data_dir.
"""

from configs import base

UNITS = {"rnn": 100, "gru": 46, "lstm": 36}  # about 20K parameters each with 88 inputs and outputs
DATASETS = ("jsb", "nottingham", "musedata", "piano")


def get_config(arg=None):
  return base.finalize(music_config(), arg, choices=CHOICES, smoke=[shrink_eval_batch])


def music_config():
  """The unlocked JSB LSTM config that the variants (and configs/chung_polyphonic.py) start from."""
  config = base.base_config()
  config.task.name = "music"
  config.task.dataset = "jsb"          # jsb | nottingham | musedata | piano
  config.task.data_dir = ""            # folder like shared/data; "" = $RECURRENT_DATA_DIR
  config.task.bucket = 64              # pad each batch's time axis to a multiple of this
  config.task.train_crop = 0           # train on random windows of this many steps; 0 = whole pieces
  config.task.eval_batch_size = 32     # pieces per evaluation batch
  config.task.figure = True            # write music_prediction.png at each evaluation

  config.model.cell = "lstm"
  config.model.hidden_sizes = (UNITS["lstm"],)

  config.optim.name = "rmsprop"        # as in Chung et al. (2014)
  config.optim.learning_rate = 3e-3    # chosen on the valid split (get_sweep)
  config.optim.clip_norm = 1.0         # gradient norm clipped at 1

  config.batch_size = 8                # pieces per training step
  config.num_steps = 3000              # about 105 epochs of JSB's 229 training pieces
  config.log_every = 100
  config.eval_every = 250
  config.checkpoint_every = 500
  config.keep_checkpoints = 1
  return config


def set_cell(config, cell):
  """``cell=...``: the cell and its size (about 20K parameters)."""
  config.model.cell = cell
  config.model.hidden_sizes = (UNITS[cell],)


def set_dataset(config, dataset):
  """``dataset=...``: the long-piece sets train on 200-step windows, evaluated 8 pieces at a time."""
  config.task.dataset = dataset
  config.task.train_crop = 0 if dataset == "jsb" else 200
  config.task.eval_batch_size = 32 if dataset == "jsb" else 8


CHOICES = {"cell": base.Choice(tuple(UNITS), set_cell), "dataset": base.Choice(DATASETS, set_dataset)}


def shrink_eval_batch(config):
  config.task.eval_batch_size = 8


def get_sweep():
  """Each cell (with its size) at three learning rates: a list of points, since cell and size go together.

  Pick each cell's rate by valid NLL (runs/music_sweep/*/final.json).
  """
  return [{"model.cell": cell, "model.hidden_sizes": (units,), "optim.learning_rate": lr}
          for cell, units in UNITS.items() for lr in (1e-3, 3e-3, 1e-2)]
