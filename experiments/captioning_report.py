"""Compares trained captioning runs: a table, and held-out canvases with every model's caption.

    python -m experiments.captioning_report \
        --workdir=runs/captioning_attention,runs/captioning_none --out=docs/figures

Reads each run's ``captioning_report.json`` and ``captions.json`` (written by
the captioning task at its last step; for a run stopped early, or with
``--latest``, they are made first from the latest checkpoint, into
``WORKDIR/evaluate/step_<N>/``), prints a Markdown table, draws the first
``--canvases`` held-out canvases (rebuilt from the first run's config: they
are a pure function of it) with the reference and each run's greedy caption
into ``captioning_captions.png``, and copies each attention run's
``attention_words.png`` to ``captioning_attention_<attention>.png``
(``experiments.outputs.captioning_report``).
"""

from absl import app, flags

flags.DEFINE_list("workdir", None, "comma-separated workdirs of trained captioning runs")
flags.DEFINE_string("out", "docs/figures", "folder for the figures")
flags.DEFINE_bool("latest", False, "remake every report from the latest checkpoint")
flags.DEFINE_integer("canvases", 8, "held-out canvases in the captions figure")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  from experiments import outputs
  table, written = outputs.captioning_report(FLAGS.workdir, FLAGS.out, FLAGS.latest, FLAGS.canvases)
  print(table)
  print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
  app.run(main)
