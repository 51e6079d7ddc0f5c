"""The training loop every experiment shares: ``train_and_evaluate(config, workdir)`` and ``evaluate``.

    final = train_and_evaluate(config, workdir)   # resumes from workdir/checkpoints if present
    metrics = evaluate(config, workdir, checkpoint="best")

The workdir holds ``config.json`` (the resolved config; a restart with a
config that differs in anything but ``num_steps`` fails listing the fields),
``checkpoints/`` (Orbax), ``metrics.jsonl`` and ``tb/`` (the same scalars),
``loss_curve.png`` and ``final.json`` (written when the step budget is done),
and the files of the task's report (``reports.write``: the task returns them
as data, the loop writes them on process 0).

A step is ``state, metrics = train_step(state, task.train_batch(step))``, jitted
with the state donated. Metrics leave the device only every ``log_every``
steps: the loss as its mean over those steps (``metrics.window_means``; the
first log after a resume averages the steps since the resume), the task's
other metrics and the norms as the logging step's own values (only that step
computes them: ``state.make_train_step(..., logged=False)`` runs the others). Since ``train_batch`` is a pure function of (seed, step) and the step's
key is ``fold_in(key(seed), step)``, a run resumed from a checkpoint computes
bitwise the same parameters as one that was never interrupted (on CPU).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import jax
import numpy as np
import ml_collections
from absl import logging

from recurrent import profiling
from recurrent.checks import check_int
from recurrent.tasks import Task, get_task
from recurrent.tasks.base import Evaluator
from recurrent.training import checkpoint as checkpoint_lib
from recurrent.training import distributed
from recurrent.training import metrics as metrics_lib
from recurrent.training import parallel
from recurrent.training import reports
from recurrent.training import state as state_lib
from recurrent.training import workdir as workdir_lib
from recurrent.training.optim import check_optim, make_optimizer

RESUMABLE_FIELDS = workdir_lib.RESUMABLE_FIELDS  # the fields a restart may change


def check_config(config) -> None:
  """Fails early, naming the field, on values the loop cannot run with."""
  for field in ("batch_size", "num_steps", "log_every", "eval_every", "checkpoint_every",
                "keep_checkpoints"):
    check_int(field, config[field])
  for field in ("eval_batches", "num_devices", "seed"):
    check_int(field, config[field], 0)
  check_optim(config.optim)


def config_to_dict(config) -> dict:
  """The config as plain JSON data (tuples become lists), as written to config.json."""
  return json.loads(config.to_json_best_effort(sort_keys=True))


def config_diff(old: dict, new: dict) -> list[str]:
  """Dotted names of the fields whose values differ (or exist in only one)."""
  return workdir_lib.diff(old, new)


def write_or_check_config(config, workdir: Path, latest_step: int | None = None,
                          allow_config_change=(), check_only: bool = False) -> None:
  """Writes workdir/config.json, or checks that a restart uses the same config (``workdir.write_config``)."""
  workdir_lib.write_config(config_to_dict(config), workdir, latest_step, allow_config_change,
                           check_only)


def load_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """The resolved config a run wrote to workdir/config.json, locked."""
  path = Path(workdir) / "config.json"
  if not path.exists():
    raise ValueError(f"workdir: no config.json in {workdir}; is it a training workdir?")
  config = ml_collections.ConfigDict(workdir_lib.read_config(path))
  for section in ("model",):
    if "hidden_sizes" in config.get(section, {}):
      config[section].hidden_sizes = tuple(config[section].hidden_sizes)
  config.lock()
  return config


def _eta(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
      f"{seconds // 60}m{seconds % 60:02d}s"


class _Setup:
  """What training and evaluation build from a config: task, optimiser, mesh, checkpoints, evaluator."""

  def __init__(self, config, workdir: Path, read_only: bool = False):
    check_config(config)
    self.task = get_task(config)
    self.mesh = distributed.make_mesh(config.num_devices, config.batch_size)
    self.seed, self.batch_size = config.seed, config.batch_size
    self.ckpt = checkpoint_lib.Checkpoints(workdir / "checkpoints", config.keep_checkpoints,
                                           self.task.eval_metric, self.task.eval_mode,
                                           read_only=read_only)
    steps = workdir_lib.schedule_steps(config_to_dict(config), workdir,
                                       self.ckpt.latest_step() is not None)
    self.tx = make_optimizer(config.optim, steps)
    self.evaluator = Evaluator.for_task(
        self.task, place=lambda batch: distributed.place_eval_batch(batch, self.mesh),
        max_batches=config.eval_batches, name="task.eval_batches")

  def evaluate(self, params) -> dict:
    """The held-out metrics (``task.eval_batches``, at most ``config.eval_batches`` of them)."""
    return self.evaluator(params, self.task.eval_batches())

  def initial_state(self) -> state_lib.TrainState:
    """The step-0 state, replicated over the mesh (the first compile)."""
    return distributed.place_state(
        state_lib.init_state(self.task, self.tx, self.seed, self.batch_size), self.mesh)

  def check_shapes(self, optim, step: int) -> None:
    """Traces init, one train step and one eval step (``jax.eval_shape``: no compile, no FLOPs).

    Whatever the model or the batch cannot do (an unknown cell, a bad size,
    a batch that does not divide over the devices) fails here, before the
    workdir is written to.
    """
    state = jax.eval_shape(
        lambda: state_lib.init_state(self.task, self.tx, self.seed, self.batch_size))
    batch = distributed.train_batch(self.task, step, self.mesh, self.batch_size, check=True)[1]
    jax.eval_shape(state_lib.make_train_step(self.task, self.tx, optim), state, batch)
    eval_batch = next(iter(self.task.eval_batches()), None)
    if eval_batch is None:
      raise ValueError("task.eval_batches: yielded no batches (is the held-out split empty?)")
    carry = () if self.task.initial_carry is None else (
        self.task.initial_carry(next(x.shape[0] for x in jax.tree.leaves(eval_batch) if np.ndim(x))),)
    jax.eval_shape(state_lib.make_eval_step(self.task), state.params, eval_batch, *carry)


def _check_finite(state, ckpt) -> None:
  bad = int(state.nonfinite_step)
  if bad >= 0:
    ckpt.wait()
    raise FloatingPointError(
        f"loss or gradient became NaN/Inf at step {bad}; stopped. The last good checkpoint "
        f"(step {ckpt.latest_step()}) is kept. To resume from it with a lower rate, rerun with "
        f"--config.optim.learning_rate=NEW --allow_config_change=optim.learning_rate.")


def _report(task: Task, params, step: int, workdir: Path) -> dict:
  """``task.report``'s scalars, known to every process; process 0 computes it and writes its files.

  The task returns a ``Report`` (scalars and files as data); ``reports.write``
  puts its texts and figures into ``workdir``, each atomically.
  """
  if task.report is None:
    return {}

  def report():
    out = reports.check(task.report(distributed.host_local(params), step),
                        f"task.report at step {step}")
    reports.write(out, workdir)
    return {k: float(v) for k, v in out.scalars.items()}

  return distributed.run_on_main(report, f"task.report at step {step}")


def train_and_evaluate(config, workdir: str | os.PathLike, restore_step: int | None = None,
                       allow_config_change: tuple[str, ...] = (), profile_steps: int = 0) -> dict:
  """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint) and returns the final eval metrics.

  Process 0 holds the workdir's lock throughout (a second trainer fails "in
  use by pid N"). ``restore_step`` resumes from that checkpoint instead of the
  latest, moving the later ones to ``checkpoints_set_aside/``;
  ``allow_config_change`` names the fields that may differ from the run's
  config.json (see ``recurrent.training.workdir``). ``profile_steps`` > 0
  traces that many train steps after the first (compiling) one with
  ``jax.profiler`` into ``tb/`` (TensorBoard's profile plugin; Perfetto reads
  its ``*.trace.json.gz``) and writes their busiest operations to
  ``profile_ops.txt`` and the log (``recurrent.profiling``); process 0 only.
  It changes no value: the run's results are the same either way.
  """
  check_int("profile_steps", profile_steps, 0, note="0 traces nothing")
  workdir = Path(workdir)
  distributed.check_same_config(config_to_dict(config), config_diff)  # every process, one config
  workdir.mkdir(parents=True, exist_ok=True)
  held = workdir_lib.lock(workdir) if distributed.is_main() else contextlib.nullcontext()
  with held:
    return _train_and_evaluate(config, workdir, restore_step, tuple(allow_config_change),
                               profile_steps)


class _ProfiledSteps:
  """Traces train steps ``start + 1`` .. ``start + n`` (after the compiling one; process 0 only)
  and writes where their time went: ``before(step, state)`` and ``after(step, state)`` wrap
  each step, and do nothing outside that window."""

  def __init__(self, workdir: Path, start: int, num_steps: int, n: int):
    self.workdir, self.first, self.last = workdir, start + 1, min(start + n, num_steps - 1)
    self.trace = None
    if n and distributed.is_main():
      if self.last < self.first:
        logging.warning("profile_steps: fewer than 2 steps left to run; nothing is profiled")
      else:
        self.trace = profiling.Trace(str(workdir / "tb"))

  def _active(self, step: int) -> bool:
    return self.trace is not None and self.first <= step <= self.last

  def before(self, step: int, state) -> None:
    if not self._active(step):
      return
    jax.block_until_ready(state)
    if step == self.first:
      self.trace.start()
      self.seconds = 0.0  # the train steps' own time: logging and evaluation left out
    self.step_start = time.perf_counter()

  def after(self, step: int, state) -> None:
    if not self._active(step):
      return
    jax.block_until_ready(state)
    self.seconds += time.perf_counter() - self.step_start
    if step == self.last:
      rows = self.trace.stop(self.last - self.first + 1, self.seconds)
      self.trace = None
      table = profiling.format_ops(rows, top=30)
      (self.workdir / "profile_ops.txt").write_text(
          f"steps {self.first + 1}-{self.last + 1}: self time per operation "
          f"(recurrent/profiling.py; the trace: {self.workdir / 'tb'})\n{table}\n")
      logging.info("where steps %d-%d spent their time:\n%s", self.first + 1, self.last + 1, table)


def _train_and_evaluate(config, workdir: Path, restore_step, allow_config_change,
                        profile_steps: int = 0) -> dict:
  setup = _Setup(config, workdir)  # bad values, an unknown task, missing data: before any compile
  task, ckpt, mesh = setup.task, setup.ckpt, setup.mesh
  if restore_step is not None and restore_step not in ckpt.all_steps():
    raise ValueError(f"restore_step: no checkpoint {restore_step} in {ckpt.manager.directory}; "
                     f"saved steps are {ckpt.all_steps()}")
  start = ckpt.latest_step() or 0 if restore_step is None else restore_step
  setup.check_shapes(config.optim, start)  # the model and the step, traced: before anything is written
  distributed.run_on_main(lambda: write_or_check_config(
      config, workdir, start or None, allow_config_change, check_only=True), "checking config.json")
  state = setup.initial_state()
  if start:  # a checkpoint that cannot be restored fails here, with the workdir unchanged
    state = workdir_lib.restore(ckpt, start, like=state)
  distributed.run_on_main(lambda: write_or_check_config(
      config, workdir, start or None, allow_config_change), "writing config.json")
  if restore_step is not None and distributed.run_on_main(
      lambda: workdir_lib.set_aside_after(workdir, restore_step), "setting checkpoints aside"):
    ckpt.manager.reload()

  logging.info("mesh: %d device(s) (%s) on axis 'data', %d process(es)", mesh.size,
               mesh.devices.flat[0].platform, jax.process_count())
  if start:
    logging.info("resumed from %s at step %d", ckpt.manager.directory, start)
  writer = metrics_lib.MetricWriter(workdir, start) if distributed.is_main() else \
      distributed.NullWriter()
  # {logs this step: its jitted step}: the logged metrics (task metrics, norms) only where they are
  # written; the other steps return the loss alone and compute the same state (each variant is
  # compiled when first used: one compile when every step logs)
  train_steps = {logged: jax.jit(state_lib.make_train_step(task, setup.tx, config.optim, logged),
                                 donate_argnums=0, out_shardings=(parallel.state_shardings(mesh),
                                                                  parallel.replicated(mesh)))
                 for logged in (False, True)}
  best = None
  best_step = ckpt.best_step()
  if best_step is not None and ckpt.manager.metrics(best_step):
    best = ckpt.manager.metrics(best_step)[task.eval_metric]
  better = (lambda a, b: a < b) if task.eval_mode == "min" else (lambda a, b: a > b)

  eval_metrics = None
  window_start, window_steps, window_tokens = time.perf_counter(), 0, []
  window_metrics = []  # this log interval's per-step metrics, still on the device
  num_steps = config.num_steps
  profiled = _ProfiledSteps(workdir, start, num_steps, profile_steps)
  try:  # the event file is flushed even when a NaN or a failed save stops the run
    for step in range(start, num_steps):
      local, batch = distributed.train_batch(task, step, mesh, config.batch_size)  # local: its rows
      window_tokens.append(task.num_tokens(local))
      done = step + 1
      logs = done % config.log_every == 0 or done == num_steps
      if step == start and not logs:  # the logged variant compiled too, before the first rate starts
        train_steps[True].lower(state, batch).compile()  # (jit's cache: its first call reuses it)
      profiled.before(step, state)
      state, metrics = train_steps[logs](state, batch)
      profiled.after(step, state)
      window_metrics.append(metrics)
      window_steps += 1
      if step == start and not logs:  # keep compilation out of the first rate
        jax.block_until_ready(state.step)
        window_start, window_steps, window_tokens = time.perf_counter(), 0, []

      if logs:
        _check_finite(state, ckpt)
        scalars = metrics_lib.window_means(jax.device_get(window_metrics))
        window_metrics = []
        elapsed = time.perf_counter() - window_start
        tokens = distributed.process_sum(float(sum(float(t) for t in window_tokens)))
        scalars["steps_per_s"] = window_steps / elapsed
        scalars["tokens_per_s"] = tokens / elapsed
        writer.write(done, "train", scalars)
        logging.info("step %d/%d  loss %.5g  |  %.2f steps/s  %.4g tokens/s  |  ETA %s", done,
                     num_steps, scalars["loss"], scalars["steps_per_s"], scalars["tokens_per_s"],
                     _eta((num_steps - done) / scalars["steps_per_s"]))
        window_start, window_steps, window_tokens = time.perf_counter(), 0, []

      evaluated = done % config.eval_every == 0 or done == num_steps
      if evaluated:
        _check_finite(state, ckpt)
        eval_start = time.perf_counter()
        eval_metrics = setup.evaluate(state.params)
        eval_metrics.update(_report(task, state.params, done, workdir))
        writer.write(done, "eval", eval_metrics)
        logging.info("eval at step %d: %s", done,
                     "  ".join(f"{k} {v:.5g}" for k, v in sorted(eval_metrics.items())))
        window_start += time.perf_counter() - eval_start  # eval time is not training throughput

      ranked = evaluated and task.eval_metric in eval_metrics  # absent when its count was 0
      if evaluated and not ranked:
        logging.warning("eval at step %d: no %s (count 0 over the held-out split); not ranked for best",
                        done, task.eval_metric)
      is_best = ranked and (best is None or better(eval_metrics[task.eval_metric], best))
      if is_best:
        best = eval_metrics[task.eval_metric]
      if done % config.checkpoint_every == 0 or done == num_steps or is_best:
        _check_finite(state, ckpt)
        ckpt.save(done, state, metrics=eval_metrics if ranked else None)

    ckpt.wait()
  finally:
    writer.close()
  if eval_metrics is None:  # nothing left to train: the run was already complete
    eval_metrics = setup.evaluate(state.params)
  final = {"step": num_steps, "eval": eval_metrics, "best_step": ckpt.best_step(),
           "best": {task.eval_metric: best}}
  if distributed.is_main():
    metrics_lib.plot_loss_curves(workdir, "loss")
    (workdir / "final.json").write_text(json.dumps(final, indent=2) + "\n")
  ckpt.close()
  return final


def evaluation_dir(workdir: str | os.PathLike, step: int) -> Path:
  """Where ``evaluate`` of checkpoint ``step`` writes: ``WORKDIR/evaluate/step_<step>``."""
  return Path(workdir) / "evaluate" / f"step_{step}"


def evaluate(config, workdir: str | os.PathLike, checkpoint: str = "best") -> dict:
  """Restores the 'best' or 'latest' checkpoint (or a step number) and returns its eval metrics.

  The task's report (figures, samples) is written to ``evaluation_dir(workdir,
  step)``, never over the files of the training run.
  """
  setup, step, state = _restore(config, workdir, checkpoint)
  metrics = setup.evaluate(state.params)
  if setup.task.report is not None:  # its figures go to their own folder, not over the run's
    out = evaluation_dir(workdir, step)
    if distributed.is_main():
      out.mkdir(parents=True, exist_ok=True)
    metrics.update(_report(setup.task, state.params, step, out))
  setup.ckpt.close()
  return {"step": step, **metrics}


def restore_params(config, workdir: str | os.PathLike, checkpoint: str = "best"):
  """(step, parameters) of the 'best' or 'latest' checkpoint (or a step number) of a run."""
  setup, step, state = _restore(config, workdir, checkpoint)
  setup.ckpt.close()
  return step, state.params


def _restore(config, workdir: str | os.PathLike, checkpoint: str):
  workdir = Path(workdir)
  task = get_task(config)  # fails on a bad config before anything is restored
  ckpt = checkpoint_lib.Checkpoints(workdir / "checkpoints", config.keep_checkpoints,
                                    task.eval_metric, task.eval_mode, read_only=True)
  steps = ckpt.all_steps()
  if not steps:
    raise ValueError(f"workdir: no checkpoint in {workdir}/checkpoints")
  if checkpoint == "best":  # the latest when none was ranked (the eval metric's count was always 0)
    step = ckpt.best_step() if ckpt.best_step() is not None else ckpt.latest_step()
  elif checkpoint == "latest":
    step = ckpt.latest_step()
  elif str(checkpoint).isdigit() and int(checkpoint) in steps:
    step = int(checkpoint)
  elif str(checkpoint).isdigit():
    raise ValueError(f"checkpoint: no step {checkpoint} in {workdir}/checkpoints; saved steps are {steps}")
  else:
    raise ValueError(f"checkpoint: must be 'best', 'latest' or a step number, got {checkpoint!r}")
  ckpt.close()
  setup = _Setup(config, workdir, read_only=True)
  state = workdir_lib.restore(setup.ckpt, step, like=setup.initial_state())
  return setup, step, state
