"""Evaluates a trained workdir without training: ``python -m experiments.evaluate --workdir=DIR``.

Rebuilds the task from ``DIR/config.json``, restores the best checkpoint (by
the task's eval metric; ``--checkpoint=latest`` or a step number instead) and
prints the held-out metrics, also written to ``DIR/evaluate/step_<N>/evaluate.json``
(the task's figures and samples for that checkpoint go to the same folder;
the training run's own files are left alone). Takes the multi-process flags of
experiments.train (``./launch.sh evaluate --num_processes=N``).
"""

import json

from absl import app, flags

from recurrent.training import distributed
from recurrent.training.loop import evaluate, evaluation_dir, load_config
from recurrent.training.metrics import quiet_libraries

flags.DEFINE_string("workdir", None, "a workdir written by experiments.train")
flags.DEFINE_string("checkpoint", "best", "'best', 'latest' or a step number")
flags.mark_flag_as_required("workdir")
distributed.define_flags()
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  quiet_libraries()
  distributed.initialize_from_flags()  # several processes: the split is shared out among them
  with distributed.fail_fast():  # several processes: a failed one exits now, not after the timeout
    metrics = evaluate(load_config(FLAGS.workdir), FLAGS.workdir, FLAGS.checkpoint)
  if not distributed.is_main():
    return
  out = evaluation_dir(FLAGS.workdir, metrics["step"])
  out.mkdir(parents=True, exist_ok=True)
  (out / "evaluate.json").write_text(json.dumps(metrics, indent=2) + "\n")
  print(f"checkpoint step {metrics.pop('step')} ({FLAGS.checkpoint}): "
        + "  ".join(f"{k} {v:.5g}" for k, v in sorted(metrics.items())))


if __name__ == "__main__":
  app.run(main)
