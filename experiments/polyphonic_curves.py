"""Valid NLL against step, one panel per polyphonic set, one colour per cell (each seed a line).

    python -m experiments.polyphonic_curves --workdirs='runs/chung/*/*' --out=docs/figures/polyphonic_chung.png

Reads each run's ``config.json`` (task.dataset, model.cell, seed) and the eval
rows of its ``metrics.jsonl`` (``loss`` = valid NLL per time step; the train
and test NLL of the same rows are drawn thin and dashed for the test split);
marks each run's best step (the checkpoint whose test NLL the table reports).
Runs of configs/chung_polyphonic.py; see docs/polyphonic_chung.md.
"""

import glob
import json
import re
from pathlib import Path

from absl import app, flags

from recurrent.training.metrics import curve, read_jsonl

flags.DEFINE_string("workdirs", None, "glob of run workdirs (configs/chung_polyphonic.py runs)")
flags.DEFINE_string("out", None, "the PNG to write")
flags.mark_flags_as_required(["workdirs", "out"])
FLAGS = flags.FLAGS

SETS = ("jsb", "nottingham", "musedata", "piano")
TITLES = {"jsb": "JSB Chorales", "nottingham": "Nottingham", "musedata": "MuseData", "piano": "Piano-midi.de"}
COLOURS = {"rnn": "tab:blue", "gru": "tab:orange", "lstm": "tab:green"}


def load_runs(pattern: str) -> list[dict]:
  """[{dataset, cell, seed, steps, valid, test, best_step}] of the runs matching ``pattern`` with evals."""
  runs = []
  for wd in sorted(Path(p) for p in glob.glob(pattern)):
    if not (wd / "config.json").exists():
      continue
    config = json.loads((wd / "config.json").read_text())
    records = read_jsonl(wd / "metrics.jsonl")
    steps, valid = curve(records, "eval", "loss")
    if not steps:
      continue
    final = json.loads((wd / "final.json").read_text()) if (wd / "final.json").exists() else {}
    runs.append({"dataset": config["task"]["dataset"], "cell": re.split(r"[:_]", config["model"]["cell"])[0],
                 "seed": config["seed"], "steps": steps, "valid": valid,
                 "test": curve(records, "eval", "test_nll")[1], "best_step": final.get("best_step")})
  return runs


def plot(runs: list[dict], out: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  sets = [s for s in SETS if any(r["dataset"] == s for r in runs)]
  if not sets:
    raise ValueError("workdirs: no run with evaluations among them")
  fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.8), squeeze=False)
  for ax, s in zip(axes[0], sets):
    for r in (r for r in runs if r["dataset"] == s):
      c = COLOURS.get(r["cell"], "k")
      ax.plot(r["steps"], r["valid"], "o-", color=c, markersize=3, lw=1.2,
              label=f"{r['cell']} valid" if r["seed"] == 0 else None)
      if len(r["test"]) == len(r["steps"]):
        ax.plot(r["steps"], r["test"], "--", color=c, lw=0.7, alpha=0.7,
                label=f"{r['cell']} test" if r["seed"] == 0 else None)
      if r["best_step"] in r["steps"]:
        i = r["steps"].index(r["best_step"])
        ax.plot([r["best_step"]], [r["valid"][i]], "*", color=c, markersize=9, markeredgecolor="k")
    lows = [v for r in runs if r["dataset"] == s for v in r["valid"] + r["test"]]
    worst_best = max(min(r["valid"]) for r in runs if r["dataset"] == s)
    ax.set_ylim(min(lows) - 0.3, max(worst_best, min(lows) + 2.0) + 1.0)  # the first evals are far above
    ax.set_title(TITLES[s])
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("NLL per time step (nats)")
  axes[0][-1].legend(fontsize=7)
  fig.suptitle("tanh RNN / GRU / LSTM at ~20K parameters (Chung et al. 2014 sizes); "
               "3 seeds each, star = best valid step", fontsize=10)
  fig.tight_layout()
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=90)
  plt.close(fig)


def main(argv):
  del argv
  runs = load_runs(FLAGS.workdirs)
  plot(runs, Path(FLAGS.out))
  print(f"{len(runs)} runs -> {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
