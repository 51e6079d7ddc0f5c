"""Compares trained captioning runs: a table, and held-out canvases with every model's caption.

    python -m experiments.captioning_report \
        --workdir=runs/captioning_attention,runs/captioning_none --out=docs/figures

Reads each run's ``captioning_report.json`` and ``captions.json`` (written by
the captioning task at its last step; for a run stopped early, or with
``--latest``, they are made first from the latest checkpoint by
``recurrent.training.loop.evaluate`` with ``num_steps`` set to that step,
into ``WORKDIR/evaluate/step_<N>/``), prints a Markdown table, draws the
first ``--canvases`` held-out canvases (rebuilt from the first run's config:
they are a pure function of it) with the reference and each run's greedy
caption into ``captioning_captions.png``, and copies each attention run's
``attention_words.png`` to ``captioning_attention_<attention>.png``.
"""

import json
import shutil
from pathlib import Path

from absl import app, flags

flags.DEFINE_list("workdir", None, "comma-separated workdirs of trained captioning runs")
flags.DEFINE_string("out", "docs/figures", "folder for the figures")
flags.DEFINE_bool("latest", False, "remake every report from the latest checkpoint")
flags.DEFINE_integer("canvases", 8, "held-out canvases in the captions figure")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def report_dir(workdir: Path, latest: bool) -> Path:
  """The folder holding the run's final report (made from the latest checkpoint when needed)."""
  if not latest and (workdir / "captioning_report.json").is_file():
    return workdir
  from recurrent.training.loop import evaluate, evaluation_dir, load_config
  ckpts = workdir / "checkpoints"
  steps = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) if ckpts.is_dir() else []
  if not steps:
    raise FileNotFoundError(f"--workdir: no captioning_report.json and no checkpoint in {ckpts}")
  config = load_config(workdir)
  config.unlock()
  config.num_steps = steps[-1]  # the task writes its full report at step == num_steps
  return evaluation_dir(workdir, evaluate(config, workdir, "latest")["step"])


def main(argv):
  del argv
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from recurrent.tasks import captioning as task_lib
  from recurrent.training.loop import load_config

  out = Path(FLAGS.out)
  out.mkdir(parents=True, exist_ok=True)
  runs = []
  print("| model | steps | BLEU greedy | BLEU beam | exact greedy | exact beam | beam errors "
        "(search / model) | wrong digits / right digits, wrong places (greedy) | attention in "
        "the named digit's cell |")
  print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
  for wd in FLAGS.workdir:
    src = report_dir(Path(wd), FLAGS.latest)
    r = json.loads((src / "captioning_report.json").read_text())
    caps = json.loads((src / "captions.json").read_text())
    runs.append((r, caps))
    a, e = r["error_analysis"], r["errors_greedy"]
    att = r.get("attention_in_named_cell")
    att = f"{att:.3f} (uniform {r['attention_in_named_cell_uniform']:.2f})" if att is not None else "-"
    name = "show and tell (no attention)" if r["attention"] == "none" else f"{r['attention']} soft attention"
    print(f"| {name} | {r['step']} | {r['bleu_greedy']:.2f} | {r['bleu_beam']:.2f} | "
          f"{r['exact_greedy']:.3f} | {r['exact_beam']:.3f} | {a['errors']} ({a['search_errors']} / "
          f"{a['model_errors']}) | {e['wrong_digits']} / {e['right_digits_wrong_places']} | {att} |")
    heat = src / "attention_words.png"
    if heat.is_file():
      shutil.copy(heat, out / f"captioning_attention_{r['attention']}.png")

  config = load_config(Path(FLAGS.workdir[0]))
  spec = task_lib.canvas_spec(config.task)
  test, _ = task_lib.test_set(config.task.data_dir, spec, config.task.num_test)
  kept = min(len(c["greedy"]) for _, c in runs)
  refs = runs[0][1]["refs"]
  # The first canvases, then the next ones that some model gets wrong.
  first = list(range(min(-(-FLAGS.canvases // 2), kept)))
  wrong = [i for i in range(len(first), kept) if any(c["greedy"][i] != refs[i] for _, c in runs)]
  pick = (first + wrong + list(range(len(first), kept)))[:min(FLAGS.canvases, kept)]
  pick = list(dict.fromkeys(pick))
  n, cols = len(pick), 4
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.3 * rows), squeeze=False)
  for k in range(rows * cols):
    ax = axes[k // cols, k % cols]
    ax.set_xticks([])
    ax.set_yticks([])
    if k >= n:
      ax.axis("off")
      continue
    i = pick[k]
    ax.imshow(test["src"][i], cmap="gray_r", vmin=0, vmax=255)
    ref = refs[i]
    lines = [f"#{i} ref: {' '.join(ref)}"]
    for r, c in runs:
      mark = "=" if c["greedy"][i] == ref else "x"
      lines.append(f"{r['attention']} {mark} {' '.join(c['greedy'][i])}")
    ax.set_xlabel("\n".join(lines), fontsize=6.5, loc="left")
  fig.suptitle("held-out canvases (test digits): reference and greedy captions "
               "(= exact, x wrong)", fontsize=9)
  fig.tight_layout()
  fig.savefig(out / "captioning_captions.png", dpi=100)
  print(f"wrote {out / 'captioning_captions.png'}")


if __name__ == "__main__":
  app.run(main)
