"""Chung et al. (2014), Table 2 at a CPU budget: tanh RNN / GRU / LSTM of about 20K parameters on four sets.

    for d in jsb nottingham musedata piano; do
      python -m experiments.sweep configs/chung_polyphonic.py:dataset=$d --workdir=runs/chung/$d --parallel=2
    done                                            # 3 cells x 3 seeds per set
    python -m experiments.results_table --runs='runs/chung/*/*' --group_by=task.dataset,model.cell \\
        --columns=num_steps,best_step,train_nll,loss,test_nll,wall_s
    python -m experiments.polyphonic_curves --workdirs='runs/chung/*/*' --out=docs/figures/polyphonic_chung.png

Variants: ``dataset=jsb|nottingham|musedata|piano`` (the set, its step budget
and its windows), ``cell=rnn|gru|lstm`` (with the paper's unit count,
100 / 46 / 36, and its forms: the GRU resets before its recurrent matmul, the
LSTM has peepholes), ``smoke``. Built on configs/music.py (same task, data and
metric: NLL per time step in nats, summed over the 88 notes). What follows the
paper and what does not is in docs/polyphonic_chung.md: RMSProp with the
gradient norm rescaled to 1 and early stopping on the valid split (the best
checkpoint's test NLL) follow it; weight noise (std 0.075), the paper's
initialisation and its per-model learning-rate search do not; the step
budget is far below a converged run.
"""

from configs import base
from configs import music

UNITS = music.UNITS                  # Chung et al. Table 1: 100 / 46 / 36 units, about 20K parameters
CELLS = {"rnn": "rnn", "gru": "gru_reset_before", "lstm": "lstm:peephole=true"}  # the paper's forms (see docs)
SEEDS = (0, 1, 2)
# Steps per set: what fits 36 runs in about 70 minutes of a shared 2-core CPU (docs/polyphonic_chung.md).
STEPS = {"jsb": 3000, "nottingham": 3000, "musedata": 2000, "piano": 2000}
EVALS = 5                            # evaluations (valid, plus train and test NLL) per run


def get_config(arg=None):
  config = music.music_config()
  config.optim.learning_rate = 3e-3  # one rate for all cells: the JSB sweep's middle (docs/music.md)
  config.task.eval_batch_size = 32   # whole pieces, sorted by length: fewer scan steps per evaluation
  config.task.figure = False         # no prediction figure at each evaluation
  config.keep_checkpoints = 1        # the last, plus the best by valid NLL
  set_dataset(config, "jsb")
  set_cell(config, "lstm")
  return base.finalize(config, arg, choices={"cell": base.Choice(tuple(CELLS), set_cell),
                                             "dataset": base.Choice(music.DATASETS, set_dataset)},
                       smoke=[music.shrink_eval_batch])


def set_cell(config, cell):
  """``cell=rnn|gru|lstm``: the paper's form of the cell and its unit count."""
  config.model.cell = CELLS[cell]
  config.model.hidden_sizes = (UNITS[cell],)


def set_dataset(config, dataset):
  """``dataset=...``: music's windows (200 steps on the long-piece sets), and this set's step budget."""
  music.set_dataset(config, dataset)
  config.task.eval_batch_size = 32
  config.task.bucket = 64 if dataset == "jsb" else 200  # windows unpadded; fewer evaluation shapes to compile
  config.num_steps = STEPS[dataset]
  # Follow --config.num_steps=N (field references; setting one of these itself cuts its link).
  steps = base.int_ref(config, "num_steps")
  per_eval = lambda n: max(n // EVALS, 1)
  config.eval_every = base.derive(per_eval, steps)
  config.checkpoint_every = base.derive(per_eval, steps)
  config.log_every = base.derive(lambda n: max(per_eval(n) // 2, 1), steps)


def get_sweep():
  """Each cell at its paper size, three seeds; the set comes from the config arg (``:dataset=piano``)."""
  return [{"model.cell": CELLS[cell], "model.hidden_sizes": (units,), "seed": seed}
          for cell, units in UNITS.items() for seed in SEEDS]
