"""A Markdown table of finished runs, each at its best checkpoint (the eval row of ``final.json``'s best_step).

    python -m experiments.results_table --runs='runs/music_sweep/*' \\
        --columns=model.cell,model.hidden_sizes,optim.learning_rate,train_nll,loss,test_nll

A column is a dotted config field (from the run's ``config.json``) or an eval
metric (from ``metrics.jsonl`` at the best step). A workdir without
``final.json`` did not finish and is listed as such, not filled in.
"""

import glob
import json
from pathlib import Path

from absl import app, flags

flags.DEFINE_string("runs", None, "glob of run workdirs")
flags.DEFINE_list("columns", None, "config fields (dotted) and eval metrics, in order")
flags.mark_flags_as_required(["runs", "columns"])
FLAGS = flags.FLAGS


def best_row(workdir: Path) -> dict | None:
  """The run's config fields (dotted) and eval metrics at its best step; None if unfinished."""
  if not (workdir / "final.json").exists():
    return None
  final = json.loads((workdir / "final.json").read_text())
  evals = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()
           if '"eval"' in l]
  row = next(r for r in evals if r["step"] == final["best_step"])

  def flat(d, prefix=""):
    for k, v in d.items():
      yield from flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]

  return {**dict(flat(json.loads((workdir / "config.json").read_text()))), **row,
          "best_step": final["best_step"], "num_steps": final["step"]}


def fmt(v) -> str:
  if isinstance(v, float):
    return f"{v:.4g}"
  if isinstance(v, list):
    return "(" + ", ".join(map(str, v)) + ")"
  return str(v)


def main(argv):
  del argv
  cols = ["run"] + FLAGS.columns
  lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
  for wd in sorted(Path(p) for p in glob.glob(FLAGS.runs)):
    row = best_row(wd)
    cells = [wd.name] + (["did not finish"] + [""] * (len(cols) - 2) if row is None
                         else [fmt(row.get(c, "")) for c in FLAGS.columns])
    lines.append("| " + " | ".join(cells) + " |")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
