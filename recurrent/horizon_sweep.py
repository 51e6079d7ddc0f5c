"""Horizon against length: how far back can each cell learn? (issue 16; configs/horizon_sweep.py).

Shape legend: S seeds, T sequence length (the task's delay), K distance back
from the last step, C checkpoints (initialisation and the end of training).

For every task of ``config.tasks``, every delay T of ``config.delays`` and
every cell of ``config.cells`` (a cell spec such as ``"lstm:forget_bias=0"``;
``{T}`` in it becomes the delay, for ``"lstm:chrono={T}"``), it trains
``config.num_seeds`` models for the same step budget with the gradient lab's
trainer (``recurrent.gradient_lab.train_arm``, vmapped over seeds) and keeps,
per seed:

  * loss / baseline: the held-out loss at the end over the task's memoryless
    baseline (1: nothing learned);
  * steps to learn: the first logged step whose training loss (the mean over
    that log_every chunk) is at most ``learned_fraction`` x baseline; NaN
    when the budget ends first;
  * the gradient horizon at initialisation and at the end: the first
    distance k where ||dL/dh_{T-k}|| (L the loss at the last step, h the
    ``part`` of the carry) has fallen by ``horizon_factor``; inf ("beyond
    T") when it never does within the sequence;
  * for a linear recurrence (a cell with ``diagonal_jacobian``), the decay
    of its diagonal Jacobian dh_T/dh_{T-k} = prod_{s>T-k} a_s: the median
    and the 90th percentile over the state's units (mean of log over the
    batch), at initialisation and at the end.

``run(config)`` returns the rows of ``sweep.csv`` (one per task, T, cell,
seed) and the results, and prints a table per task; ``experiments/outputs.py``
writes ``sweep.csv``, ``horizon_sweep_<task>.png`` (four panels against T:
loss / baseline, steps to learn, horizon at initialisation, horizon after
training; median over seeds with a min-max band) and
``diagonal_decay_<task>.png`` (linear cells, the longest T). ``train`` is the one
seam: tests pass a made-up trainer with known answers.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from recurrent import diagnostics, gradient_lab
from recurrent.cells import CELLS, parse_cell

# gradient-lab fields copied as they are from the sweep's config
LAB_FIELDS = ("seed", "num_seeds", "hidden_sizes", "layer", "part", "optim", "batch_size",
              "num_steps", "log_every", "diag_batch_size", "eval_size", "horizon_factor")


def check_config(config) -> None:
  """Fails early, naming the field."""
  if not config.tasks:
    raise ValueError("tasks: need at least one task, got none")
  if not config.delays or list(config.delays) != sorted(set(config.delays)):
    raise ValueError(f"delays: must be increasing and non-empty, got {tuple(config.delays)!r}")
  if not config.cells:
    raise ValueError("cells: need at least one cell, got none")
  for spec in config.cells:
    parse_cell(spec.replace("{T}", "3"))          # an unknown cell or field fails here
  if not 0.0 < config.learned_fraction < 1.0:
    raise ValueError(f"learned_fraction: must be in (0, 1), got {config.learned_fraction!r}")


def lab_config(config, task: str, delay: int) -> ml_collections.ConfigDict:
  """The gradient lab's config for one (task, T): measured at initialisation and at the end."""
  lab = ml_collections.ConfigDict({k: config[k] for k in LAB_FIELDS})
  lab.task = ml_collections.ConfigDict(config.task.to_dict())
  lab.task.name = task
  lab.task.delay = delay
  lab.checkpoint_steps = (0, config.num_steps)
  lab.recurrent_max_sv = 0.0
  return lab


def is_linear(spec: str) -> bool:
  """Whether the cell is a diagonal linear recurrence (it has ``diagonal_jacobian``)."""
  return hasattr(CELLS[parse_cell(spec.replace("{T}", "3"))[0]][0], "diagonal_jacobian")


def diagonal_decay(model, params, batch) -> jax.Array:
  """[2, K]: log10 of prod_{s>T-k} |a_s|, median and 90th percentile over units (mean over batch).

  The first layer of the model's stack; K = T distances, k = 0 first (log 1 = 0).
  """
  _, trace = diagnostics.perturbed_apply(model, {"params": params}, batch["inputs"])
  stack = trace.stack
  cell = stack.layers[0].cell
  p0 = stack.layer_params(params["rnn"]["stack"])[0]
  a_BTN = cell.diagonal_jacobian(p0, cell.project_inputs(p0, trace.x_BTD))
  log_a_BTN = jnp.log(jnp.maximum(a_BTN, 1e-30)) / jnp.log(10.0)
  back_BKN = jnp.cumsum(log_a_BTN[:, ::-1], axis=1)                   # sum of the last k+1 logs
  back_BKN = jnp.concatenate([jnp.zeros_like(back_BKN[:, :1]), back_BKN[:, :-1]], axis=1)
  per_unit_KN = jnp.mean(back_BKN, axis=0)
  return jnp.stack([jnp.median(per_unit_KN, axis=-1), jnp.percentile(per_unit_KN, 90, axis=-1)])


def steps_to_learn(steps_N: np.ndarray, loss_NS: np.ndarray, threshold: float) -> np.ndarray:
  """[S]: the first step whose logged training loss is <= threshold (NaN: never)."""
  out = np.full(loss_NS.shape[1], np.nan)
  for s in range(loss_NS.shape[1]):
    hit = np.nonzero(loss_NS[:, s] <= threshold)[0]
    if hit.size:
      out[s] = steps_N[hit[0]]
  return out


def summarise(result: dict, baseline: float, config) -> dict:
  """The per-seed numbers the figures and the CSV show, from one train_arm result."""
  h = gradient_lab.horizons(result["grad"], config.horizon_factor)      # [C, S]
  out = {"loss_ratio": result["eval_loss"][-1] / baseline,
         "steps_to_learn": steps_to_learn(result["steps"], result["loss"],
                                          config.learned_fraction * baseline),
         "horizon_init": h[0], "horizon_end": h[-1]}
  if result.get("extra") is not None and np.ndim(result["extra"]) == 4:  # [C, S, 2, K]
    out["decay"] = result["extra"]
  return out


def run(config, log=print, train=gradient_lab.train_arm) -> dict:
  """The whole sweep; returns {"rows": [...], "tables": {task: str}, "results": {(task, T, cell): dict}}.

  Writes nothing: ``experiments/outputs.py`` writes sweep.csv and the figures.
  """
  check_config(config)
  points = [(task, T, spec) for task in config.tasks for T in config.delays
            for spec in config.cells]
  cost = np.array([T for _, T, _ in points], np.float64)     # the work of a point grows with T
  log(f"horizon sweep: {len(config.tasks)} tasks x {len(config.delays)} lengths x "
      f"{len(config.cells)} cells = {len(points)} points, {config.num_seeds} seeds, "
      f"{config.num_steps} steps each")
  results: dict[tuple, dict] = {}
  t0 = time.perf_counter()
  for i, (task, T, spec) in enumerate(points):
    lab = lab_config(config, task, T)
    problem = gradient_lab.get_problem(lab.task)
    cell = spec.replace("{T}", str(T))
    arm = gradient_lab.Arm(cell, config.optim.clip_norm, spec)
    extra = diagonal_decay if is_linear(spec) else None
    quiet = lambda s: None  # noqa: E731
    r = train(lab, problem, arm, log=quiet, jacobian=False, extra=extra)
    results[(task, T, spec)] = {**summarise(r, problem.baseline, config),
                                "baseline": problem.baseline}
    s = results[(task, T, spec)]
    done = cost[:i + 1].sum() / cost.sum()
    elapsed = time.perf_counter() - t0
    log(f"[{i + 1}/{len(points)}] {task} T={T} {cell}: loss/baseline "
        f"{np.median(s['loss_ratio']):.3f}, horizon init/end {np.median(s['horizon_init']):g}/"
        f"{np.median(s['horizon_end']):g}, learned by {_fmt_steps(s['steps_to_learn'], config)}"
        f"  ({elapsed:.0f} s, ETA {elapsed / done - elapsed:.0f} s)")
  tables = {}
  for task in config.tasks:
    tables[task] = table(config, task, results)
    log(f"\n{task}:\n{tables[task]}")
  log(f"total {time.perf_counter() - t0:.1f} s")
  return {"rows": csv_rows(results), "tables": tables, "results": results}


def _fmt_steps(steps_S: np.ndarray, config) -> str:
  learned = np.isfinite(steps_S)
  if not learned.any():
    return f"never (>{config.num_steps})"
  return f"{np.median(steps_S[learned]):g} ({learned.sum()}/{learned.size} seeds)"


def csv_rows(results: dict) -> list[dict]:
  """The rows of sweep.csv: one per task, T, cell and seed."""
  rows = []
  for (task, T, spec), s in results.items():
    for seed in range(len(s["loss_ratio"])):
      rows.append({"task": task, "delay": T, "cell": spec, "seed": seed,
                   "loss_over_baseline": float(s["loss_ratio"][seed]),
                   "steps_to_learn": float(s["steps_to_learn"][seed]),
                   "horizon_init": float(s["horizon_init"][seed]),
                   "horizon_end": float(s["horizon_end"][seed])})
  return rows


def table(config, task: str, results: dict) -> str:
  """Per cell and T: median loss/baseline, seeds learned, horizon at init and end (median)."""
  fmt_h = lambda h, T: f">{T - 1}" if np.isinf(h) else f"{h:g}"  # noqa: E731
  head = (f"{'cell':<26} {'T':>4} {'loss/base':>9} {'learned':>7} {'steps':>6} {'hor@init':>8} "
          f"{'hor@end':>8}")
  lines = [head, "-" * len(head)]
  for spec in config.cells:
    for T in config.delays:
      s = results[(task, T, spec)]
      learned = np.isfinite(s["steps_to_learn"])
      steps = f"{np.median(s['steps_to_learn'][learned]):.0f}" if learned.any() else "-"
      lines.append(f"{spec:<26} {T:>4} {np.median(s['loss_ratio']):>9.3f} "
                   f"{f'{learned.sum()}/{learned.size}':>7} {steps:>6} "
                   f"{fmt_h(np.median(s['horizon_init']), T):>8} "
                   f"{fmt_h(np.median(s['horizon_end']), T):>8}")
  return "\n".join(lines)
