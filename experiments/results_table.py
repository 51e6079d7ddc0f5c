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

from absl import app, flags

from recurrent.training.results import best_row, group_rows, workdirs

flags.DEFINE_string("runs", None, "glob of run workdirs")
flags.DEFINE_list("columns", None, "config fields (dotted) and eval metrics, in order")
flags.DEFINE_list("group_by", [], "columns whose equal values make one row; the other numeric columns "
                  "become mean ± std over its runs")
flags.mark_flags_as_required(["runs", "columns"])
FLAGS = flags.FLAGS


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
    rows = [best_row(wd) for wd in workdirs(FLAGS.runs)]
    cols = FLAGS.group_by + [c for c in FLAGS.columns if c not in FLAGS.group_by] + ["runs"]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |"
              for r in group_rows(rows, FLAGS.group_by, cols[len(FLAGS.group_by):-1])]
    unfinished = sum(r is None for r in rows)
    print("\n".join(lines) + (f"\n\n{unfinished} run(s) did not finish and are left out." if unfinished else ""))
    return
  cols = ["run"] + FLAGS.columns
  lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
  for wd in workdirs(FLAGS.runs):
    row = best_row(wd)
    cells = [wd.name] + (["did not finish"] + [""] * (len(cols) - 2) if row is None
                         else [fmt(row.get(c, "")) for c in FLAGS.columns])
    lines.append("| " + " | ".join(cells) + " |")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
