"""The case-correction comparison table: ``python -m experiments.case_table [--step=N] runs/case_*``.

Prints a Markdown table with one row per workdir (cell, direction, parameters,
held-out loss, byte accuracy, accuracy on the bytes whose case changes, and
the output on the fixed sentence) at evaluation step ``--step`` (default: each
run's last), plus the copy-the-input baseline on
the same held-out split. Reads each workdir's ``final.json``, ``config.json``
and ``fixed_sentence.txt``; the baseline rebuilds the first run's task (needs
the book).
"""

import json
from pathlib import Path

import jax
import numpy as np
from absl import app, flags

from recurrent.tasks import get_task
from recurrent.training.loop import load_config

STEP = flags.DEFINE_integer("step", 0, "the evaluation step to report; 0 = each run's last")


def eval_at(workdir: Path, step: int) -> tuple[dict, str]:
  """The eval metrics and the fixed-sentence output at ``step`` (the last evaluation when 0)."""
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  rows = [r for r in rows if r["split"] == "eval" and (not step or r["step"] == step)]
  if not rows:
    raise ValueError(f"--step: no evaluation at step {step} in {workdir}")
  lines = (workdir / "fixed_sentence.txt").read_text(encoding="utf-8").splitlines()[2:]
  want = rows[-1]["step"]
  out = [l.split(": ", 1)[1] for l in lines if int(l.split("step", 1)[1].split(":")[0]) == want]
  return rows[-1], out[-1]


def num_params(task) -> int:
  shapes = jax.eval_shape(task.init_params, jax.random.key(0))
  return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


def copy_baseline(task) -> tuple[float, float]:
  """Byte accuracy and changed-case accuracy of predicting the (lowercased) input itself."""
  right = total = 0
  for b in task.eval_batches():
    valid = np.arange(b["inputs"].shape[1])[None, :] < b["lengths"][:, None]
    right += int(np.sum((b["inputs"] == b["targets"]) & valid))
    total += int(np.sum(valid))
  return right / total, 0.0


def main(argv):
  workdirs = [Path(w) for w in argv[1:]]
  if not workdirs:
    raise app.UsageError("give one or more case_correction workdirs")
  print("| model | direction | parameters | held-out loss | byte accuracy | changed-case accuracy |"
        " fixed sentence at that step |")
  print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
  task = None
  for w in workdirs:
    config = load_config(w)
    final, last = eval_at(w, STEP.value)
    task = get_task(config)
    direction = "bidirectional" if config.model.bidirectional else "forward"
    arch = config.task.architecture
    if arch != "tagger":
      direction = f"{arch} ({direction} encoder)"
    print(f"| {config.model.cell} {config.model.hidden_sizes[0]} | {direction} | {num_params(task):,} |"
          f" {final['loss']:.4f} | {100 * final['accuracy']:.2f}% |"
          f" {100 * final['changed_accuracy']:.2f}% | `{last}` |")
  acc, changed = copy_baseline(task)
  print(f"| copy the input | - | 0 | - | {100 * acc:.2f}% | {100 * changed:.2f}% | - |")


if __name__ == "__main__":
  app.run(main)
