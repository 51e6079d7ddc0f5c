"""The gradient lab (the default experiment): why a tanh RNN forgets and an LSTM or GRU does not.

    ./launch.sh                                            # this config, workdir runs/gradient_decay
    ./launch.sh gradient_decay --config.task.name=first_token --config.task.delay=50
    ./launch.sh gradient_decay --config=configs/gradient_decay.py:exploding --workdir=runs/exploding
    python -m experiments.gradient_decay --config=configs/gradient_decay.py:smoke --workdir=/tmp/gd

Trains every cell of ``cells`` for ``num_seeds`` seeds on a long-range task
and measures ||dL/dh_{T-k}|| against the distance k at initialisation and at
each of ``checkpoint_steps``. Expect (default, ~3 min on 2 CPU cores): the
tanh RNN's gradient falls by 1000x within ~10-20 steps, the LSTM's and GRU's
reach much further; the gated cells solve the adding problem (MSE well below
the 1/6 baseline), the RNN stays near it. The workdir gets
``gradient_decay.png``, ``gradient_by_distance.csv``, ``summary.csv``,
``train_log.csv`` and ``config.json``.

Variants (``:arg``, comma-separated): ``smoke`` (seconds, for tests),
``exploding`` (tanh RNN with W_h rescaled to sigma_max = 1.5, trained by SGD
with and without gradient clipping).
"""

import ml_collections

from configs import base


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.seed = 0                          # root key: seed s uses fold_in(key(seed), s)
  config.num_seeds = 3                     # models per cell, trained together (vmapped)

  config.task = base.long_range_task("adding", delay=50, num_eval_batches=4)  # --config.task.name=...

  config.cells = ("rnn", "lstm", "gru")    # names in recurrent.cells.CELLS, one curve each
  config.hidden_sizes = (64,)              # one size per layer
  config.layer = 0                         # the layer whose h_t is measured
  config.part = "hidden"                   # hidden: h_t | carry: the whole state, e.g. (h, c)
  config.recurrent_max_sv = 0.0            # > 0: rescale every W_h at init to this largest singular value
  config.clip_norms = (0.0,)               # one run per value: clip by global norm (0: no clipping)

  # Adam at 3e-3; clip by global norm is set per run from clip_norms
  config.optim = base.optim_config(learning_rate=3e-3, clip_norm=None, decay_steps=None)

  config.batch_size = 32                   # per seed and step
  config.num_steps = 1000                  # training steps per seed
  config.log_every = 100                   # steps per progress line (and per jitted chunk)
  config.checkpoint_steps = (0, 300, 1000)  # measure here (0: initialisation); multiples of log_every
  config.diag_batch_size = 16              # examples in the fixed diagnostics batch
  config.eval_size = 512                   # examples in the fixed held-out batch
  config.horizon_factor = 1000.0           # horizon: first k where the gradient fell by this factor

  base.apply_variants(config, arg, flags={"exploding": exploding, "smoke": smoke})
  config.lock()
  return config


def exploding(config):
  """The exploding-gradient arm: W_h at sigma_max 1.5, SGD with and without clipping."""
  config.cells = ("rnn",)
  config.recurrent_max_sv = 1.5        # 1.5^k: explodes until tanh saturates
  config.clip_norms = (0.0, 1.0)
  config.optim.name = "sgd"
  config.optim.learning_rate = 0.05
  config.num_steps = 1000
  config.checkpoint_steps = (0, 200, 1000)


def smoke(config):
  """Seconds, for tests."""
  config.cells = ("rnn", "lstm")       # two compiles, not three: the suite's time budget
  config.num_seeds = 2
  config.task.delay = 12
  config.hidden_sizes = (8,)
  config.batch_size = 8
  config.num_steps = 6
  config.log_every = 3
  config.checkpoint_steps = (0, 6)
  config.diag_batch_size = 4
  config.eval_size = 16
