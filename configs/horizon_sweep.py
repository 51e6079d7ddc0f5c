"""Horizon against length (issue 16): how far back can each cell learn, classic and linear?

    python -m experiments.horizon_sweep --config=configs/horizon_sweep.py:reduced \
        --workdir=runs/horizon_reduced
    python -m experiments.horizon_sweep --workdir=runs/horizon_sweep   # the full sweep (hours here)
    python -m experiments.horizon_sweep --config=configs/horizon_sweep.py:smoke --workdir=/tmp/hs

Trains every cell of ``cells`` on every task of ``tasks`` at every delay T of
``delays`` (``num_seeds`` seeds, vmapped; the same step budget everywhere) and
plots, per task, loss / baseline, steps to learn and the gradient horizon at
initialisation and after training against T (recurrent/horizon_sweep.py).
``{T}`` in a cell spec is replaced by the delay (chrono's T_max). The page
docs/gradient_lab_horizons.md reads the figures.

Variants (``:arg``): ``reduced`` (fewer T, 2 seeds, a small budget: the
measured run of the docs page), ``lstm200`` (the LSTM at T = 200: forget
bias, chrono, the GRU), ``smoke`` (seconds, for tests).
"""

import ml_collections

from configs import base


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.seed = 0                          # root key: seed s uses fold_in(key(seed), s)
  config.num_seeds = 3                     # models per point, trained together (vmapped)

  config.tasks = ("adding", "copy_memory")  # long-range tasks of recurrent/tasks/
  config.delays = (25, 50, 100, 200, 400)  # T: sequence length (adding) or gap (copy memory)
  config.task = base.long_range_task("", delay=0, num_eval_batches=4)  # name, delay: set per point

  config.cells = (                         # cell specs (recurrent.cells.parse_cell), one line each
      "rnn",                               # tanh, orthogonal W_h
      "rnn:recurrent_init=glorot",         # tanh, Glorot-uniform W_h
      "irnn",                              # ReLU, W_h = I (Le et al. 2015)
      "lstm",                              # forget bias 1 (Jozefowicz et al. 2015)
      "lstm:forget_bias=0.0",
      "lstm:forget_bias=3.0",
      "lstm:chrono={T}",                   # Tallec & Ollivier 2018, T_max = T
      "gru",
      "gru:chrono={T}",
      "min_gru",                           # Feng et al. 2024
      "lru",                               # Orvieto et al. 2023
      "rg_lru",                            # De et al. 2024
  )
  config.hidden_sizes = (64,)              # one size per layer
  config.layer = 0                         # the layer whose state is measured
  config.part = "carry"                    # the whole state: (h, c) LSTM, (Re h, Im h, y) LRU

  # Adam at 3e-3, clipped by global norm (the IRNN needs it)
  config.optim = base.optim_config(learning_rate=3e-3, clip_norm=1.0, decay_steps=None)

  config.batch_size = 32                   # per seed and step
  config.num_steps = 1000                  # the same budget at every point
  config.log_every = 50                    # steps per jitted chunk; steps to learn is a multiple
  config.diag_batch_size = 16              # examples in the fixed diagnostics batch
  config.eval_size = 512                   # examples in the fixed held-out batch
  config.horizon_factor = 1000.0           # horizon: first k where the gradient fell by this factor
  config.learned_fraction = 0.1            # learned: training loss <= this x baseline

  base.apply_variants(config, arg, flags={"reduced": reduced, "lstm200": lstm200, "smoke": smoke})
  config.lock()
  return config


def reduced(config):
  """The run measured for docs/gradient_lab_horizons.md (a shared 2-core CPU): adding only, 8 cells,
  T in (25, 50, 100), 2 seeds, 300 steps, 32 units."""
  config.tasks = ("adding",)
  config.delays = (25, 50, 100)
  config.cells = ("rnn", "irnn", "lstm", "lstm:chrono={T}", "gru", "min_gru", "lru", "rg_lru")
  config.num_seeds = 2
  config.num_steps = 300
  config.hidden_sizes = (32,)
  config.eval_size = 256


def lstm200(config):
  """Why the LSTM stays at the baseline at T = 200 while the GRU learns (issue 16): the gradient
  lab's setting (64 units, Adam 3e-3, no clipping), forget-gate bias and chrono against the GRU."""
  config.tasks = ("adding",)
  config.delays = (200,)
  config.cells = ("lstm", "lstm:forget_bias=3.0", "lstm:chrono={T}", "gru")
  config.num_seeds = 2
  config.num_steps = 500
  config.optim.clip_norm = 0.0


def smoke(config):
  """Seconds, for tests: two tiny lengths, two cells (one linear), a few steps."""
  config.tasks = ("adding",)
  config.delays = (6, 10)
  config.cells = ("lstm:chrono={T}", "rg_lru")
  config.num_seeds = 2
  config.hidden_sizes = (8,)
  config.batch_size = 8
  config.num_steps = 4
  config.log_every = 2
  config.diag_batch_size = 4
  config.eval_size = 16
