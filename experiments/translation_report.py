"""Compares trained translation runs: BLEU vs source length, and a table of BLEU and the error analysis.

    python -m experiments.translation_report \
        --workdir=runs/translation_bahdanau,runs/translation_none --out=docs/figures

Reads each run's ``translation_report.json`` (written by the translation
task at its last step; for a run stopped early, or with ``--latest``, it is
made first from the latest checkpoint, by ``recurrent.training.loop.evaluate``
with ``num_steps`` set to that step so the task writes its full report, into
``WORKDIR/evaluate/step_<N>/``;
``--bleu_sentences=N`` decodes N held-out sentences then) and writes ``translation_bleu_by_length.png`` to
``--out``, copying the first attention heatmap of each run next to it as
``translation_attention_<attention>.png``; prints a Markdown table.
"""

import json
import shutil
from pathlib import Path

from absl import app, flags

flags.DEFINE_list("workdir", None, "comma-separated workdirs of trained translation runs")
flags.DEFINE_string("out", "docs/figures", "folder for the figures")
flags.DEFINE_bool("latest", False, "remake every report from the latest checkpoint")
flags.DEFINE_integer("bleu_sentences", 0, "with --latest: decode this many held-out sentences "
                     "(all of them if more) instead of the run's task.bleu_sentences")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def report_from_latest_checkpoint(workdir: Path, bleu_sentences: int = 0) -> Path:
  """Writes the full report of the latest checkpoint; returns its folder (``loop.evaluation_dir``)."""
  from recurrent.training.loop import evaluate, evaluation_dir, load_config
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  if not steps:
    raise FileNotFoundError(f"--workdir: no checkpoint in {workdir / 'checkpoints'}")
  config = load_config(workdir)
  config.unlock()
  config.num_steps = steps[-1]  # the task writes its full report at step == num_steps
  if bleu_sentences > 0:
    config.task.bleu_sentences = bleu_sentences
  return evaluation_dir(workdir, evaluate(config, workdir, "latest")["step"])


def main(argv):
  del argv
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  out = Path(FLAGS.out)
  out.mkdir(parents=True, exist_ok=True)
  fig, ax = plt.subplots(figsize=(6.5, 3.8))
  print("| attention | steps | BLEU greedy | BLEU beam | beam errors | search | model |")
  print("| --- | --- | --- | --- | --- | --- | --- |")
  for wd in FLAGS.workdir:
    src = Path(wd)
    if FLAGS.latest or not (src / "translation_report.json").is_file():
      src = report_from_latest_checkpoint(Path(wd), FLAGS.bleu_sentences)
    path = src / "translation_report.json"
    if not path.is_file():
      raise FileNotFoundError(f"--workdir: expected {path} (a finished translation run)")
    r = json.loads(path.read_text())
    for kind, style in (("greedy", "--"), ("beam", "-")):
      by_len = r[f"bleu_by_source_length_{kind}"]
      xs = sorted(int(k) for k in by_len)
      ax.plot(xs, [by_len[str(x)][0] for x in xs], style, marker="o",
              label=f"{r['attention']} ({kind})")
    a = r["error_analysis"]
    print(f"| {r['attention']} | {r['step']} | {r['bleu_greedy']:.2f} | {r['bleu_beam']:.2f} | "
          f"{a['errors']} | {a['search_errors']} | {a['model_errors']} |")
    heat = src / "attention_0.png"
    if heat.is_file():
      shutil.copy(heat, out / f"translation_attention_{r['attention']}.png")
  ax.set_xlabel("source length (word tokens)")
  ax.set_ylabel("BLEU")
  ax.set_title("French to English, held-out sentences, same step budget", fontsize=10)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(out / "translation_bleu_by_length.png", dpi=100)
  print(f"wrote {out / 'translation_bleu_by_length.png'}")


if __name__ == "__main__":
  app.run(main)
