"""The gradient lab: how far back the gradient reaches, per cell, at initialisation and while training.

Shape legend: S seeds, B batch, T time, K distance back from the last step,
C checkpoints.

For every cell in ``config.cells`` (and every clip norm in
``config.clip_norms``) it trains ``config.num_seeds`` models at once (vmapped
over seeds, each with its own initialisation and data) on a long-range task
of ``recurrent/tasks/`` and, at each step of ``config.checkpoint_steps``,
measures on a fixed batch

  * ||dL/dh_{T-k}|| for k = 0 .. T-1, L the loss at the last step
    (``recurrent.diagnostics.hidden_gradients``), averaged over the batch;
  * ||dh_T/dh_{T-k}||, the spectral norm of the Jacobian product;
  * the effective horizon: the first k where the gradient norm has fallen by
    ``config.horizon_factor`` from k = 0;
  * the held-out loss and the largest singular value of W_h.

``run(config)`` returns the measurements and prints the table of horizons and
final losses against the task's baseline; ``csv_tables`` lays every number
out as rows. ``experiments/outputs.py`` writes them to the workdir:
``gradient_decay.png`` (one panel per checkpoint, one log-scale curve per
cell: the median over seeds of the norm relative to k = 0, with a min-max
band), ``gradient_by_distance.csv``, ``summary.csv`` and ``train_log.csv``.
"""

from __future__ import annotations

import dataclasses
import importlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from recurrent import diagnostics
from recurrent.cells import CELLS
from recurrent.checks import check_int
from recurrent.tasks._long_range import Problem
from recurrent.training.optim import check_optim, make_optimizer


@dataclasses.dataclass(frozen=True)
class Arm:
  """One curve of the figure: a cell trained with one clip norm (0: no clipping)."""

  cell: str
  clip_norm: float
  label: str


def arms(config) -> list[Arm]:
  """Cells x clip norms; the clip norm enters the label only when several are compared."""
  if not config.cells:
    raise ValueError("cells: need at least one cell, got none")
  if not config.clip_norms:
    raise ValueError("clip_norms: need at least one value (0.0: no clipping), got none")
  out = []
  for cell in config.cells:
    for clip in config.clip_norms:
      label = cell if len(config.clip_norms) == 1 else (
          f"{cell}, clip {clip:g}" if clip > 0 else f"{cell}, no clip")
      if config.recurrent_max_sv > 0:
        label += f" (sigma_max {config.recurrent_max_sv:g})"
      out.append(Arm(cell, float(clip), label))
  return out


def check_config(config) -> None:
  """Fails early, naming the field."""
  for field in ("num_seeds", "batch_size", "num_steps", "log_every", "diag_batch_size",
                "eval_size"):
    check_int(field, config[field])
  steps = tuple(config.checkpoint_steps)
  if not steps or list(steps) != sorted(set(steps)):
    raise ValueError(f"checkpoint_steps: must be increasing and non-empty, got {steps!r}")
  for s in steps:
    if s < 0 or s > config.num_steps or s % config.log_every:
      raise ValueError(f"checkpoint_steps: each must be a multiple of log_every="
                       f"{config.log_every} in [0, num_steps={config.num_steps}], got {s!r}")
  if config.num_steps % config.log_every:
    raise ValueError(f"num_steps: must be a multiple of log_every={config.log_every}, "
                     f"got {config.num_steps!r}")
  if not config.horizon_factor > 1:
    raise ValueError(f"horizon_factor: must be > 1, got {config.horizon_factor!r}")
  if config.part not in diagnostics.PARTS:
    raise ValueError(f"part: must be one of {diagnostics.PARTS}, got {config.part!r}")
  unknown = [c for c in config.cells if c not in CELLS]
  if not config.cells or unknown:
    raise ValueError(f"cells: must be a non-empty tuple of names in {sorted(CELLS)}, got "
                     f"{tuple(config.cells)!r}")
  sizes = tuple(config.hidden_sizes)
  if not sizes:
    raise ValueError(f"hidden_sizes: must be a non-empty tuple of integers >= 1, got {sizes!r}")
  for i, h in enumerate(sizes):
    check_int(f"hidden_sizes[{i}]", h)
  n = len(sizes)
  check_int("layer", config.layer, -n, below=n, note=f"hidden_sizes has {n} layers")
  if not 0 <= config.recurrent_max_sv < float("inf"):
    raise ValueError(f"recurrent_max_sv: must be finite and >= 0 (0: off), got "
                     f"{config.recurrent_max_sv!r}")
  if not config.clip_norms or not all(0 <= c < float("inf") for c in config.clip_norms):
    raise ValueError(f"clip_norms: must be a non-empty tuple of finite values >= 0 (0: no "
                     f"clipping), got {tuple(config.clip_norms)!r}")
  check_optim(_optim_with_clip(config.optim, 0.0))
  get_problem(config.task)   # the task's fields


def get_problem(task_config) -> Problem:
  """The long-range problem named ``task_config.name`` (a module of recurrent/tasks/)."""
  names = ("adding", "copy_memory", "first_token")
  if task_config.name not in names:
    raise ValueError(f"task.name: must be one of {names}, got {task_config.name!r}")
  return importlib.import_module(f"recurrent.tasks.{task_config.name}").problem(task_config)


def _optim_with_clip(optim, clip_norm: float):
  optim = ml_collections.ConfigDict(optim.to_dict())
  optim.clip_norm = clip_norm
  return optim


def train_arm(config, problem: Problem, arm: Arm, log=print, jacobian: bool = True,
              extra=None) -> dict:
  """Trains ``num_seeds`` models of one arm, measuring at every checkpoint step.

  Returns numpy arrays: grad [C, S, K], jac [C, S, K] (by distance k; NaN
  with ``jacobian=False``, which skips its H backward passes), eval_loss
  [C, S], max_sv [C, S], extra [C, S, ...] (``extra(model, params,
  diag_batch)`` of one seed's parameters, when given), and the training log
  (steps [N], loss [N, S], grad_norm [N, S]: each the mean over a log_every
  chunk).
  """
  S = config.num_seeds
  model = problem.make_model(cell=arm.cell, hidden_sizes=tuple(config.hidden_sizes))
  tx = make_optimizer(_optim_with_clip(config.optim, arm.clip_norm), config.num_steps)
  root = jax.random.key(config.seed)
  seed_keys = jax.vmap(lambda s: jax.random.fold_in(root, s))(jnp.arange(S))
  init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(seed_keys)
  data_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(seed_keys)
  diag_batch = problem.sample(jax.random.fold_in(root, 10_001), config.diag_batch_size)
  eval_batch = problem.sample(jax.random.fold_in(root, 10_002), config.eval_size)
  layer = config.layer

  def init(key):
    params = model.init(key, diag_batch["inputs"][:1])["params"]
    if config.recurrent_max_sv > 0:
      params = diagnostics.scale_recurrent(params, config.recurrent_max_sv)
    return params, tx.init(params)

  def loss_of(params, batch):
    return problem.loss(model.apply({"params": params}, batch["inputs"]), batch)[0]

  def chunk(params, opt_state, data_key, steps_N):
    def body(carry, step):
      params, opt_state = carry
      batch = problem.sample(jax.random.fold_in(data_key, step), config.batch_size)
      loss, grads = jax.value_and_grad(loss_of)(params, batch)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), (loss, optax.tree.norm(grads))
    (params, opt_state), (loss_N, gnorm_N) = jax.lax.scan(body, (params, opt_state), steps_N)
    return params, opt_state, jnp.mean(loss_N), jnp.mean(gnorm_N)

  def diagnose(params):
    variables = {"params": params}
    args = (diag_batch["inputs"],)
    g_BTH = diagnostics.hidden_gradients(
        model, variables, args, lambda out: problem.final_loss(out, diag_batch),
        layer=layer, part=config.part)
    if jacobian:
      jac_BT = diagnostics.jacobian_norms(model, variables, args, layer=layer, part=config.part)
    else:
      jac_BT = jnp.full(g_BTH.shape[:2], jnp.nan, g_BTH.dtype)
    eval_loss = loss_of(params, eval_batch)
    svs = diagnostics.recurrent_singular_values(params)
    max_sv = (jnp.max(jnp.stack([jnp.max(s) for s in svs.values()])) if svs
              else jnp.zeros((), jnp.float32))       # a linear recurrence has no W_h
    grad_K = jnp.mean(jnp.linalg.norm(g_BTH, axis=-1), axis=0)[::-1]
    more = jnp.zeros(()) if extra is None else extra(model, params, diag_batch)
    return grad_K, jnp.mean(jac_BT, axis=0)[::-1], eval_loss, max_sv, more

  params, opt_state = jax.jit(jax.vmap(init))(init_keys)
  chunk_fn = jax.jit(jax.vmap(chunk, in_axes=(0, 0, 0, None)), donate_argnums=(0, 1))
  diagnose_fn = jax.jit(jax.vmap(diagnose))

  checkpoints = set(config.checkpoint_steps)
  results = {"grad": [], "jac": [], "eval_loss": [], "max_sv": [], "extra": []}
  log_steps, log_loss, log_gnorm = [], [], []

  def measure(step):
    out = jax.device_get(diagnose_fn(params))
    for name, value in zip(("grad", "jac", "eval_loss", "max_sv", "extra"), out):
      results[name].append(np.asarray(value, np.float64))
    horizons = [diagnostics.effective_horizon(p, config.horizon_factor) for p in out[0]]
    log(f"  [{arm.label}] step {step}: held-out loss {np.median(out[2]):.4f} "
        f"(baseline {problem.baseline:.4f}), horizon (median of seeds) {np.median(horizons):g}")

  if 0 in checkpoints:
    measure(0)
  L = config.log_every
  diverged = []
  t0 = None                          # the rate counts from the end of the first (compiling) chunk
  for start in range(0, config.num_steps, L):
    params, opt_state, loss_S, gnorm_S = chunk_fn(params, opt_state, data_keys,
                                                  jnp.arange(start, start + L))
    loss_S, gnorm_S = np.asarray(loss_S), np.asarray(gnorm_S)
    step = start + L
    if t0 is None:
      t0, first = time.perf_counter(), step
    rate = (step - first) / max(time.perf_counter() - t0, 1e-9)
    log_steps.append(step)
    log_loss.append(loss_S)
    log_gnorm.append(gnorm_S)
    speed = "compiled" if step == first else f"{rate:.0f} steps/s (x{S} seeds)"
    log(f"  [{arm.label}] step {step}/{config.num_steps}  train loss {np.median(loss_S):.4f}  "
        f"grad norm {np.median(gnorm_S):.3g}  {speed}")
    bad = np.nonzero(~np.isfinite(loss_S))[0].tolist()
    if bad != diverged:
      diverged = bad
      log(f"  [{arm.label}] step {step}: the loss is not finite for seeds {bad} (diverged)")
    if step in checkpoints:
      measure(step)
  return {**{k: np.stack(v) for k, v in results.items()},
          "steps": np.asarray(log_steps), "loss": np.stack(log_loss),
          "grad_norm": np.stack(log_gnorm), "params": jax.device_get(params)}


def horizons(grad_CSK: np.ndarray, factor: float) -> np.ndarray:
  """The effective horizon of every checkpoint and seed: [C, S]."""
  return np.array([[diagnostics.effective_horizon(p, factor) for p in per_seed]
                   for per_seed in grad_CSK])


def format_horizon(h: float, K: int) -> str:
  """'>K-1' when the gradient never fell far enough within K steps, 'diverged' for NaN."""
  if np.isinf(h):
    return f">{K - 1}"
  return "diverged" if np.isnan(h) else f"{h:g}"


def csv_tables(config, results: dict[str, dict]) -> dict[str, tuple[list[str], list[list]]]:
  """{file name: (header, rows)} of gradient_by_distance.csv, summary.csv and train_log.csv:
  every number measured (``experiments/outputs.py`` writes them)."""
  steps = list(config.checkpoint_steps)
  by_distance, summary, train_log = [], [], []
  for (arm, r) in results.items():
    C, S, K = r["grad"].shape
    for c in range(C):
      for s in range(S):
        g = r["grad"][c, s]
        for k in range(K):
          rel = g[k] / g[0] if g[0] > 0 else float("nan")
          by_distance.append([arm.label, arm.cell, arm.clip_norm, s, steps[c], k, f"{g[k]:.6e}",
                              f"{rel:.6e}", f"{r['jac'][c, s, k]:.6e}"])
  for arm, r in results.items():
    h_g, h_j = horizons(r["grad"], config.horizon_factor), horizons(r["jac"],
                                                                     config.horizon_factor)
    for c in range(len(steps)):
      for s in range(r["grad"].shape[1]):
        summary.append([arm.label, arm.cell, arm.clip_norm, s, steps[c],
                        f"{r['eval_loss'][c, s]:.6e}", f"{r['baseline']:.6e}",
                        f"{r['max_sv'][c, s]:.6e}", h_g[c, s], h_j[c, s]])
  for arm, r in results.items():
    for i, step in enumerate(r["steps"]):
      for s in range(r["loss"].shape[1]):
        train_log.append([arm.label, s, step, f"{r['loss'][i, s]:.6e}",
                          f"{r['grad_norm'][i, s]:.6e}"])
  return {
      "gradient_by_distance.csv": (["arm", "cell", "clip_norm", "seed", "step", "distance",
                                    "grad_norm", "grad_norm_relative", "jacobian_norm"],
                                   by_distance),
      "summary.csv": (["arm", "cell", "clip_norm", "seed", "step", "eval_loss", "baseline",
                       "max_singular_value", "horizon_grad", "horizon_jacobian"], summary),
      "train_log.csv": (["arm", "seed", "step", "train_loss", "grad_norm"], train_log)}


def table(config, results: dict) -> str:
  """Effective horizons (median over seeds) and final held-out loss against the baseline."""
  K = next(iter(results.values()))["grad"].shape[-1]
  fmt = lambda h: format_horizon(h, K)  # noqa: E731
  head = (f"{'arm':<28} {'horizon@init':>12} {'horizon@end':>11} {'jac horizon@init':>16} "
          f"{'final loss (median [min, max])':>32} {'baseline':>9} {'loss/base':>9}")
  lines = [head, "-" * len(head)]
  for arm, r in results.items():
    h_g = horizons(r["grad"], config.horizon_factor)
    h_j = horizons(r["jac"], config.horizon_factor)
    final = r["eval_loss"][-1]
    lines.append(
        f"{arm.label:<28} {fmt(np.median(h_g[0])):>12} {fmt(np.median(h_g[-1])):>11} "
        f"{fmt(np.median(h_j[0])):>16} "
        f"{f'{np.median(final):.4f} [{np.min(final):.4f}, {np.max(final):.4f}]':>32} "
        f"{r['baseline']:>9.4f} {np.median(final) / r['baseline']:>9.3f}")
  return "\n".join(lines)


def run(config, log=print) -> dict:
  """Runs every arm and prints the table; the files are written by ``experiments/outputs.py``.

  Returns {"table": str, "title": the figure's title, "results": {Arm: dict}}.
  """
  check_config(config)
  problem = get_problem(config.task)
  log(f"gradient lab: task {problem.name} (delay {config.task.delay}, baseline "
      f"{problem.baseline:.4f} = {problem.baseline_name}), {config.num_seeds} seeds, "
      f"{config.num_steps} steps, checkpoints {list(config.checkpoint_steps)}")
  results = {}
  t0 = time.perf_counter()
  for arm in arms(config):
    t_arm = time.perf_counter()
    log(f"[{arm.label}] training {config.num_seeds} seeds")
    results[arm] = {**train_arm(config, problem, arm, log), "baseline": problem.baseline}
    log(f"[{arm.label}] done in {time.perf_counter() - t_arm:.1f} s")
  title = (f"{problem.name}, delay {config.task.delay}, hidden {tuple(config.hidden_sizes)}: "
           f"gradient norm by distance (median of {config.num_seeds} seeds, band min-max); "
           f"dashed: 1/{config.horizon_factor:g}")
  text = table(config, results)
  log(text)
  log(f"total {time.perf_counter() - t0:.1f} s")
  return {"table": text, "title": title, "results": results}
