"""Checkpoints: an Orbax ``CheckpointManager`` under ``WORKDIR/checkpoints``.

    ckpt = Checkpoints(workdir / "checkpoints", keep=3, metric="loss", mode="min")
    step = ckpt.latest_step()                    # None on a fresh workdir
    state = ckpt.restore(step, like=state)       # exact: params, optimiser state, step, rng
    ckpt.save(step, state, metrics={"loss": 0.1})
    ckpt.wait()                                  # before the process exits

Kept: the last ``keep`` checkpoints, plus the best one by the eval metric
(among the checkpoints saved with metrics). Orbax writes each step into a
temporary directory and renames it when complete, so a process killed mid-save
(SIGKILL, a full disk) leaves the previous checkpoints intact and restorable;
``latest_step`` only sees finished ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies


def saved_steps(directory: str | os.PathLike) -> list[int]:
  """The steps whose checkpoint was fully written under ``directory``, read from the folder itself
  (Orbax renames a step's folder to its number only when it is complete); [] when there is none."""
  d = Path(directory)
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


class Checkpoints:
  """Save, restore and prune train states (any pytree of arrays)."""

  def __init__(self, directory: str | os.PathLike, keep: int, metric: str, mode: str,
               read_only: bool = False):
    if keep < 1:
      raise ValueError(f"keep_checkpoints: must be >= 1, got {keep}")
    self.metric, self.mode = metric, mode
    best = lambda m: m[metric]
    options = ocp.CheckpointManagerOptions(
        best_fn=best, best_mode=mode, read_only=read_only, create=not read_only,
        save_interval_steps=0 if read_only else 1,
        preservation_policy=policies.AnyPreservationPolicy([
            policies.LatestN(n=keep),
            policies.BestN(get_metric_fn=best, reverse=(mode == "min"), n=1,
                           keep_checkpoints_without_metrics=False),
        ]))
    self.manager = ocp.CheckpointManager(Path(directory).absolute(), options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    """The step with the best eval metric; None when no checkpoint was saved with metrics."""
    return self.manager.best_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def complete_steps(self) -> list[int]:
    """The steps whose checkpoint was fully written, read from the directory itself."""
    return saved_steps(self.manager.directory)

  def _guard(self, what: str, fn):
    """Runs a save or wait; a failure (a full disk) is re-raised saying what is still intact."""
    try:
      return fn()
    except Exception as e:
      done = self.complete_steps()
      intact = f"step {done[-1]} is the last complete checkpoint, intact" if done else \
          "no complete checkpoint exists yet"
      raise OSError(f"checkpoint: {what} in {self.manager.directory} failed ({type(e).__name__}: "
                    f"{e}); {intact}, and a restart resumes from it") from e

  def save(self, step: int, state, metrics: dict | None = None) -> None:
    """Saves ``state`` at ``step`` (asynchronously); ``metrics`` rank it for 'best'.

    An error of an earlier asynchronous save surfaces here or in ``wait``.
    """
    metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
    self._guard(f"saving step {step}", lambda: self.manager.save(
        step, args=ocp.args.StandardSave(state), metrics=metrics, force=True))

  def restore(self, step: int, like):
    """The state saved at ``step``, laid out (shapes, dtypes, shardings) like ``like``."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return type(like)(*restored) if isinstance(like, tuple) and hasattr(like, "_fields") else restored

  def wait(self) -> None:
    self._guard("finishing the pending save", self.manager.wait_until_finished)

  def close(self) -> None:
    self.manager.close()
