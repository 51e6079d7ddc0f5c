"""Sequential MNIST: test accuracy of every cell, one bar per variant, mean ± std over seeds, seeds as dots.

    python -m experiments.seq_mnist_figure --out=docs/figures/seq_mnist.png \\
        --variant='pixel, 14 x 14=runs/smnist14/*' --variant='permuted, 14 x 14=runs/psmnist14/*' \\
        --variant='pixel, 28 x 28=runs/smnist28/*'

Each ``--variant`` is ``LABEL=GLOB`` of run workdirs (the sweeps of
``configs/seq_mnist.py``); a run counts once it finished (``final.json``), at
its best checkpoint by held-out accuracy (``experiments.results_table``'s
``best_row``), and is grouped by ``model.cell``. Unfinished runs are listed,
not drawn. See docs/seq_mnist.md.
"""


from absl import app, flags

from recurrent.training import plots, results

flags.DEFINE_multi_string("variant", [], "LABEL=GLOB of run workdirs (repeatable; split at the first "
                          "'=', so the label holds none)")
flags.DEFINE_string("out", None, "the PNG to write")
flags.DEFINE_string("metric", "test_accuracy", "the eval metric drawn (at each run's best step)")
flags.DEFINE_string("title", "Sequential MNIST", "the figure's title")
flags.mark_flags_as_required(["out"])
FLAGS = flags.FLAGS

NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "tanh RNN", "rnn": "tanh RNN", "irnn": "IRNN",
         "lru": "LRU", "rg_lru": "RG-LRU", "min_gru": "minGRU", "min_lstm": "minLSTM"}


def main(argv):
  del argv
  variants = []
  for v in FLAGS.variant:
    if "=" not in v:
      raise app.UsageError(f"--variant: expected LABEL=GLOB, got {v!r}")
    variants.append(tuple(v.split("=", 1)))
  if not variants:
    raise app.UsageError("--variant: give at least one LABEL=GLOB")
  cells, series, unfinished = results.values_by(variants, "model.cell", FLAGS.metric, order=list(NAMES))
  if not cells:
    raise app.UsageError(f"--variant: no finished run matches {[g for _, g in variants]}")
  for wd in unfinished:
    print(f"not finished (left out): {wd}")
  for s in series:
    s["label"] = f"{s['label']} ({sum(map(len, s['values']))} runs)"
  path = plots.bars(FLAGS.out, [NAMES.get(c, c) for c in cells], series, title=FLAGS.title,
                    ylabel=FLAGS.metric.replace("_", " ") + " at the best checkpoint", ylim=(0, 1))
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
