"""The gradient lab: gradient norm against distance for RNN, LSTM and GRU (see configs/gradient_decay.py).

    ./launch.sh                     # = python -m experiments.gradient_decay \
                                    #     --workdir=runs/gradient_decay --config=configs/gradient_decay.py

Writes gradient_decay.png, the CSVs and config.json to the workdir, prints
progress, the table of horizons and final losses, and the figure's path.
"""

from absl import app, flags
from ml_collections import config_flags

from experiments import outputs

_CONFIG = config_flags.DEFINE_config_file("config", "configs/gradient_decay.py",
                                          "the experiment's config", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/gradient_decay", "where the outputs go")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  out = outputs.run_gradient_lab(_CONFIG.value, _WORKDIR.value, log=lambda s: print(s, flush=True))
  print(f"figure: {out['figure'].resolve()}")
  print(f"numbers: {', '.join(str(p.resolve()) for p in out['csv'])}")


if __name__ == "__main__":
  app.run(main)
