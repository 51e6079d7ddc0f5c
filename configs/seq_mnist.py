"""Sequential MNIST (Le et al. 2015): a digit classified from its pixels read one per step.

    ./launch.sh seq_mnist                                        # 28 x 28, T = 784, LSTM 128
    ./launch.sh seq_mnist --config=configs/seq_mnist.py:size=14  # 2 x 2 average-pooled, T = 196
    ./launch.sh seq_mnist --config=configs/seq_mnist.py:permuted,size=14 --config.model.cell=gru
    ./launch.sh sweep configs/seq_mnist.py:size=14,steps=1000 --workdir=runs/smnist14 --parallel=2   # 7 cells x 3 seeds
    python -m experiments.train --config=configs/seq_mnist.py:smoke --workdir=/tmp/seq_mnist

Data: ``mnist/`` under ``$RECURRENT_DATA_DIR`` (the original IDX files; LeCun,
Cortes & Burges, CC BY-SA 3.0), or ``--config.task.data_dir``. The held-out
split (best checkpoint) is the last 5,000 training images; ``test_accuracy``
is scored on the 10,000 test images at every evaluation.

Setup after Le et al. (2015) and Arjovsky et al. (2016): one recurrent layer of
128 units, the class from the last state, gradient clipping; Adam at 1e-3
(RMSProp in Arjovsky et al.), batch 100. The step budget here is small: see
docs/seq_mnist.md for what was run and what a paper-length run needs.
"""

from configs import base


def set_size(config, value):
  config.task.size = int(value)


BUDGETS = ("1000", "2000", "5000", "20000")  # the ``steps=N`` choice: a short budget with its own eval cadence


def set_steps(config, value):
  """``steps=N``: N training steps, evaluated (and checkpointed) twice, at N / 2 and at N."""
  config.num_steps = int(value)
  config.eval_every = config.checkpoint_every = int(value) // 2


CELLS = ("lstm", "gru", "rnn_tanh", "irnn", "lru", "rg_lru", "min_gru")  # every family in recurrent.cells
SEEDS = (0, 1, 2)


def get_config(arg=None):
  config = base.base_config()
  config.task.name = "seq_mnist"
  config.task.data_dir = ""            # a data folder holding mnist/; "" = $RECURRENT_DATA_DIR
  config.task.size = 28                # 28: T = 784 pixels; 14: 2 x 2 average-pooled, T = 196
  config.task.permuted = False         # one fixed random pixel order for every image
  config.task.permutation_seed = 92916 # the permutation's seed (fixed apart from config.seed)
  config.task.num_valid = 5000         # the last training images: the held-out split
  config.task.num_train = 0            # > 0: only the first N training images (quick runs)
  config.task.num_test = 0             # > 0: only the first N test images in the report
  config.task.eval_batch_size = 500    # batches of the held-out and test splits

  config.model.cell = "lstm"
  config.model.hidden_sizes = (128,)

  config.optim.name = "adam"
  config.optim.learning_rate = 1e-3
  config.optim.clip_norm = 1.0

  config.batch_size = 100
  config.num_steps = 20000             # ~36 epochs of 55,000 images
  config.log_every = 50
  config.eval_every = 1000
  config.checkpoint_every = 1000
  config.keep_checkpoints = 2
  return base.finalize(config, arg,
                       flags={"permuted": base.set_to("task.permuted", True)},
                       choices={"size": base.Choice(("28", "14"), set_size),
                                "steps": base.Choice(BUDGETS, set_steps)},
                       smoke=[shrink])


def shrink(config):
  config.task.size = 14
  config.task.num_valid = 40
  config.task.num_train = 64
  config.task.num_test = 40
  config.task.eval_batch_size = 20
  config.model.hidden_sizes = (8,)
  config.batch_size = 8


def get_sweep():
  """Every cell, three seeds: ``./launch.sh sweep configs/seq_mnist.py:size=14,steps=1000 --workdir=runs/smnist14``.

  Mean and spread over the seeds: ``python -m experiments.results_table --runs='runs/smnist14/*'
  --group_by=model.cell --columns=best_step,accuracy,test_accuracy,wall_s``.
  """
  # seed-major, so a sweep cut short still has every cell at seed 0
  return [{"model.cell": cell, "seed": seed} for seed in SEEDS for cell in CELLS]
