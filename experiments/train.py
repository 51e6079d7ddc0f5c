"""Trains one config: ``python -m experiments.train --config=configs/NAME.py[:ARG] --workdir=DIR``.

Overrides: ``--config.FIELD=VALUE`` (the config is locked, so a misspelled
field or a value of the wrong type fails before anything runs). Restarting
on a workdir with checkpoints resumes from the latest one; only
``--config.num_steps`` may differ from the run that created the workdir (and
may not go below its latest checkpoint), unless a field is named in
``--allow_config_change`` (after a NaN stop: ``--config.optim.learning_rate=3e-4
--allow_config_change=optim.learning_rate``; the change is recorded in
``config_changes.jsonl``). ``--restore_step=N`` resumes from checkpoint N
instead of the latest (when the latest cannot be restored); the later
checkpoints are moved to ``checkpoints_set_aside/``. A workdir without a
checkpoint takes any config. One trainer at a time: a second one on the
same workdir fails naming the pid that holds it.

Several processes (hosts) train one model when given ``--coordinator_address``,
``--num_processes`` and ``--process_id`` (or ``--distributed`` on SLURM or a
TPU pod slice; see recurrent/training/distributed.py and the README);
``./launch.sh NAME --num_processes=N`` starts N of them on this machine.
"""

from absl import app, flags
from ml_collections import config_flags

from recurrent.training import distributed
from recurrent.training.loop import train_and_evaluate
from recurrent.training.metrics import quiet_libraries

config_flags.DEFINE_config_file("config", None, "configs/NAME.py[:ARG]", lock_config=True)
flags.DEFINE_string("workdir", None, "directory for config.json, checkpoints, metrics and figures")
flags.DEFINE_integer("restore_step", None, "resume from this checkpoint instead of the latest; "
                     "later checkpoints are moved to WORKDIR/checkpoints_set_aside/")
flags.DEFINE_list("allow_config_change", [], "config fields (dotted) that may differ from the "
                  "workdir's config.json on this restart, e.g. optim.learning_rate")
flags.DEFINE_integer("profile_steps", 0, "trace this many train steps (after the first, compiling "
                     "one) into WORKDIR/tb (TensorBoard's profile plugin, Perfetto) and write their "
                     "busiest operations to WORKDIR/profile_ops.txt; no value changes")
flags.mark_flags_as_required(["config", "workdir"])
distributed.define_flags()
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  quiet_libraries()
  distributed.initialize_from_flags()  # before anything touches a device
  with distributed.fail_fast():  # several processes: a failed one exits now, not after the timeout
    final = train_and_evaluate(FLAGS.config, FLAGS.workdir, FLAGS.restore_step,
                               FLAGS.allow_config_change, FLAGS.profile_steps)
  if not distributed.is_main():
    return
  metrics = "  ".join(f"{k} {v:.5g}" for k, v in sorted(final["eval"].items()))
  print(f"done: step {final['step']}  eval {metrics}  (best step {final['best_step']})")


if __name__ == "__main__":
  app.run(main)
