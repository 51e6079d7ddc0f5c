"""Compares trained translation runs: BLEU vs source length, and a table of BLEU and the error analysis.

    python -m experiments.translation_report \
        --workdir=runs/translation_bahdanau,runs/translation_none --out=docs/figures

Reads each run's ``translation_report.json`` (written by the translation
task at its last step; for a run stopped early, or with ``--latest``, it is
made first from the latest checkpoint, into ``WORKDIR/evaluate/step_<N>/``;
``--bleu_sentences=N`` decodes N held-out sentences then), writes
``translation_bleu_by_length.png`` to ``--out``, copies the first attention
heatmap of each run next to it as ``translation_attention_<attention>.png``,
and prints a Markdown table (``experiments.outputs.translation_report``).
"""

from absl import app, flags

flags.DEFINE_list("workdir", None, "comma-separated workdirs of trained translation runs")
flags.DEFINE_string("out", "docs/figures", "folder for the figures")
flags.DEFINE_bool("latest", False, "remake every report from the latest checkpoint")
flags.DEFINE_integer("bleu_sentences", 0, "with --latest: decode this many held-out sentences "
                     "(all of them if more) instead of the run's task.bleu_sentences")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  from experiments import outputs
  table, written = outputs.translation_report(FLAGS.workdir, FLAGS.out, FLAGS.latest,
                                              FLAGS.bleu_sentences)
  print(table)
  print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
  app.run(main)
