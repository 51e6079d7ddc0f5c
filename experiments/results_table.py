"""A Markdown table of finished runs, each at its best checkpoint (the eval row of ``final.json``'s best_step).

    python -m experiments.results_table --runs='runs/music_sweep/*' \\
        --columns=model.cell,model.hidden_sizes,optim.learning_rate,train_nll,loss,test_nll

A column is a dotted config field (from the run's ``config.json``), an eval
metric (from ``metrics.jsonl`` at the best step), ``best_step``, ``num_steps``
or ``wall_s`` (seconds from the first to the last line of the run's
``train.log``, as the sweep writes it; a resumed run's includes the pause). A
workdir without ``final.json`` did not finish and is listed as such, not
filled in.

Several seeds: ``--group_by=task.dataset,model.cell`` gives one row per value
of those columns, each numeric column as mean ± sample standard deviation
(n - 1) over the group's finished runs, and a ``runs`` column with their count:

    python -m experiments.results_table --runs='runs/chung/*/*' --group_by=task.dataset,model.cell \\
        --columns=best_step,train_nll,loss,test_nll,wall_s
"""

import datetime
import glob
import json
import re
from pathlib import Path

import numpy as np
from absl import app, flags

flags.DEFINE_string("runs", None, "glob of run workdirs")
flags.DEFINE_list("columns", None, "config fields (dotted) and eval metrics, in order")
flags.DEFINE_list("group_by", [], "columns whose equal values make one row; the other numeric columns "
                  "become mean ± std over its runs")
flags.mark_flags_as_required(["runs", "columns"])
FLAGS = flags.FLAGS
_ABSL_TIME = re.compile(r"^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d(?:\.\d+)?) ")


def wall_seconds(log: Path) -> float | None:
  """Seconds between the first and the last absl-timestamped line of ``log``; None without two."""
  if not log.exists():
    return None
  stamps = []
  for line in log.read_text(errors="replace").splitlines():
    m = _ABSL_TIME.match(line)
    if m:
      month, day, hour, minute, sec = m.groups()
      year = stamps[-1].year if stamps else 2000  # absl writes no year; a run over New Year rolls on
      t = datetime.datetime(year, int(month), int(day), int(hour), int(minute)) + \
          datetime.timedelta(seconds=float(sec))
      stamps.append(t.replace(year=year + 1) if stamps and t < stamps[-1] else t)
  return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else None


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
          "best_step": final["best_step"], "num_steps": final["step"],
          "wall_s": wall_seconds(workdir / "train.log")}


def group_rows(rows: list[dict | None], group_by: list[str], columns: list[str]) -> list[dict]:
  """One row per distinct ``group_by`` values of the finished ``rows`` (None = unfinished, skipped).

  A column whose values are all numbers becomes (mean, sample std or None for
  one run); any other keeps its value if the group agrees, else a sorted list.
  ``runs`` is the number of finished runs in the group.
  """
  groups: dict[tuple, list[dict]] = {}
  for row in rows:
    if row is not None:
      groups.setdefault(tuple(json.dumps(row.get(g), sort_keys=True) for g in group_by), []).append(row)
  out = []
  for members in groups.values():
    grouped = {g: members[0].get(g) for g in group_by}
    for c in columns:
      values = [m.get(c) for m in members]
      if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        x = np.asarray(values, np.float64)
        grouped[c] = (float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else None)
      else:
        distinct = sorted({json.dumps(v, sort_keys=True) for v in values})
        grouped[c] = values[0] if len(distinct) == 1 else [json.loads(d) for d in distinct]
    grouped["runs"] = len(members)
    out.append(grouped)
  return sorted(out, key=lambda r: [json.dumps(r[g], sort_keys=True) for g in group_by])


def fmt(v) -> str:
  if v is None:
    return ""
  if isinstance(v, tuple):  # (mean, std) of a group
    return fmt(v[0]) if not v[1] else f"{v[0]:.4g} ± {v[1]:.2g}"  # one run, or all equal
  if isinstance(v, float):
    return f"{v:.4g}"
  if isinstance(v, list):
    return "(" + ", ".join(map(str, v)) + ")"
  return str(v)


def main(argv):
  del argv
  if FLAGS.group_by:
    rows = [best_row(Path(p)) for p in sorted(glob.glob(FLAGS.runs))]
    cols = FLAGS.group_by + [c for c in FLAGS.columns if c not in FLAGS.group_by] + ["runs"]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |"
              for r in group_rows(rows, FLAGS.group_by, cols[len(FLAGS.group_by):-1])]
    unfinished = sum(r is None for r in rows)
    print("\n".join(lines) + (f"\n\n{unfinished} run(s) did not finish and are left out." if unfinished else ""))
    return
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
