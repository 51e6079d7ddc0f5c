"""Horizon against length: every cell, every T, several seeds (see configs/horizon_sweep.py).

    python -m experiments.horizon_sweep --config=configs/horizon_sweep.py:reduced \
        --workdir=runs/horizon_reduced

Writes horizon_sweep_<task>.png, diagonal_decay_<task>.png, sweep.csv and
config.json to the workdir; prints progress with an ETA and a table per task.
"""

from absl import app, flags
from ml_collections import config_flags

from experiments import outputs

_CONFIG = config_flags.DEFINE_config_file("config", "configs/horizon_sweep.py",
                                          "the experiment's config", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/horizon_sweep", "where the outputs go")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  out = outputs.run_horizon_sweep(_CONFIG.value, _WORKDIR.value,
                                  log=lambda s: print(s, flush=True))
  for path in out["figures"]:
    print(f"figure: {path.resolve()}")


if __name__ == "__main__":
  app.run(main)
