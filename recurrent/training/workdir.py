"""The workdir's guards: one trainer at a time, and a config.json that matches its checkpoints.

    with lock(workdir):                       # "workdir W is in use by pid N" while another holds it
      write_config(config_dict, workdir, latest_step, allow=("optim.learning_rate",))

Lock: ``fcntl.flock`` on ``WORKDIR/.lock``, held for the life of the
training process. The kernel releases it when the process ends, however it
ends (SIGKILL included), so a killed run never leaves a stale lock; the file
holds the pid of the last holder only to name it in the error.

Config: a workdir with checkpoints holds one run, so a restart must use the
config that made them (``num_steps`` may grow; the fields in ``allow`` may
change, each change recorded in ``config_changes.jsonl`` with the step it
applies from). A workdir without a checkpoint holds nothing to protect: its
config.json is replaced, with a log line naming the fields that changed.

Set aside: ``set_aside_after(workdir, step)`` moves the checkpoints after
``step`` to ``WORKDIR/checkpoints_set_aside/`` (never deletes them), so that a
run restarts from ``step`` when a later checkpoint cannot be restored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Iterator, Sequence

from absl import logging

LOCK_FILE = ".lock"
RESUMABLE_FIELDS = ("num_steps", "optim.decay_steps")  # the fields any restart may change
SET_ASIDE = "checkpoints_set_aside"


class WorkdirInUse(RuntimeError):
  """Another process holds the workdir's lock."""


@contextlib.contextmanager
def lock(workdir: str | os.PathLike) -> Iterator[None]:
  """Holds an exclusive lock on ``workdir`` (created if missing) for the ``with`` body."""
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  fd = os.open(workdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
      raise WorkdirInUse(
          f"workdir {workdir} is in use by pid {holder} (another training process); wait for it "
          f"to finish or stop it, or use another --workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock


def flatten(d: dict, prefix: str = "") -> dict:
  """{"a": {"b": 1}} -> {"a.b": 1}."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def diff(old: dict, new: dict) -> list[str]:
  """Dotted names of the fields whose values differ (or exist in only one)."""
  a, b = flatten(old), flatten(new)
  return sorted(k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>"))


def _describe(old: dict, new: dict, fields: Sequence[str]) -> str:
  a, b = flatten(old), flatten(new)
  return ", ".join(f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}" for k in fields)


def schedule_steps(config: dict, workdir: str | os.PathLike, has_checkpoint: bool) -> int:
  """The length of the learning-rate schedule: a restart that raises num_steps keeps the original one.

  ``optim.decay_steps`` when set; else, on a restart of a run with
  checkpoints and a decaying schedule, the num_steps of the run that wrote
  them (read from its config.json), so that no step already planned, or
  taken, gets another learning rate (the steps past it keep the final rate;
  set ``optim.decay_steps`` to choose another length); else num_steps.
  """
  optim = config.get("optim", {})
  if optim.get("decay_steps", 0):
    return optim["decay_steps"]
  path = Path(workdir) / "config.json"
  if optim.get("schedule", "constant") in ("constant", "epoch_decay") or not has_checkpoint \
      or not path.exists():   # epoch_decay is set by steps_per_epoch, not num_steps
    return config["num_steps"]
  try:
    planned = read_config(path)["num_steps"]
  except (ValueError, KeyError):   # a damaged config.json is reported by write_config
    return config["num_steps"]
  if planned != config["num_steps"]:
    logging.warning("num_steps %d -> %d: the %r schedule keeps its length of %d steps (the rate of "
                    "the steps already planned is unchanged; later steps keep its final value); set "
                    "optim.decay_steps to choose another length", planned, config["num_steps"],
                    optim["schedule"], planned)
  return planned


def write_config(new: dict, workdir: str | os.PathLike, latest_step: int | None,
                 allow: Sequence[str] = (), check_only: bool = False) -> None:
  """Writes ``workdir/config.json`` (atomically) after checking it against the run already there.

  Args:
    new: the resolved config as plain JSON data.
    workdir: the run's directory.
    latest_step: the latest checkpoint's step, None if there is none.
    allow: dotted fields that may differ from the run's config (besides
      ``num_steps``), e.g. ``("optim.learning_rate",)`` after a NaN stop.

  Raises:
    ValueError: the fields that differ and may not, or ``num_steps`` below
      ``latest_step`` (naming both).

  With ``check_only`` it raises the same errors but writes and logs nothing.
  """
  workdir = Path(workdir)
  path = workdir / "config.json"
  unknown = [f for f in allow if f not in flatten(new)]
  if unknown:
    raise ValueError(f"allow_config_change: no config field {unknown}; "
                     f"fields are dotted names such as 'optim.learning_rate'")
  if latest_step is not None and new["num_steps"] < latest_step:
    raise ValueError(
        f"num_steps: {new['num_steps']} is below the latest checkpoint, step {latest_step}, in "
        f"{workdir}; a run cannot be shortened after the fact. Use num_steps >= {latest_step}, or "
        f"evaluate an earlier checkpoint with experiments.evaluate --checkpoint=STEP.")
  old = read_config(path) if path.exists() and latest_step is not None else None
  if path.exists() and old is None:
    try:
      old = read_config(path)
    except ValueError as e:  # nothing to protect: it is replaced below
      logging.warning("%s; the workdir has no checkpoint, so it is replaced", e)
  if old is not None:
    changed = [k for k in diff(old, new) if k not in RESUMABLE_FIELDS]
    if check_only and (not changed or latest_step is None):
      return
    if changed and latest_step is None:
      logging.warning("workdir %s has no checkpoint: its config.json is replaced (%s)", workdir,
                      _describe(old, new, changed))
    elif changed:
      refused = [k for k in changed if k not in allow]
      if refused:
        raise ValueError(
            f"workdir {workdir} holds a run with a different config ({_describe(old, new, refused)})"
            f" and checkpoints up to step {latest_step}; only {list(RESUMABLE_FIELDS)} may change on "
            f"a restart, or the fields named by --allow_config_change (e.g. "
            f"--allow_config_change=optim.learning_rate). Otherwise use a new --workdir.")
      if check_only:
        return
      record = {"step": latest_step, "time": time.time(),
                "changes": {k: [flatten(old).get(k), flatten(new).get(k)] for k in changed}}
      with (workdir / "config_changes.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
      logging.warning("workdir %s: config changed from step %d on (%s); recorded in "
                      "config_changes.jsonl", workdir, latest_step, _describe(old, new, changed))
  if check_only:
    return
  tmp = path.with_suffix(".json.tmp")
  tmp.write_text(json.dumps(new, indent=2, sort_keys=True) + "\n")
  os.replace(tmp, path)


def read_config(path: str | os.PathLike) -> dict:
  """The JSON of a workdir's config.json; a damaged file raises ValueError naming it."""
  try:
    return json.loads(Path(path).read_text(encoding="utf-8"))
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(
        f"{path}: damaged, not the JSON of a config ({type(e).__name__}: {e}); if the command's "
        f"config is the run's, delete this file and rerun, else use a new --workdir") from None


def checkpoint_steps(workdir: str | os.PathLike) -> list[int]:
  """The steps of the finished checkpoints in ``workdir/checkpoints`` (from the directory names)."""
  d = Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def set_aside_after(workdir: str | os.PathLike, step: int) -> list[int]:
  """Moves the checkpoints after ``step`` to ``workdir/checkpoints_set_aside/<step>``; returns them.

  ``step`` must be a checkpoint of the workdir.
  """
  workdir = Path(workdir)
  steps = checkpoint_steps(workdir)
  if step not in steps:
    raise ValueError(f"restore_step: no checkpoint {step} in {workdir / 'checkpoints'}; "
                     f"saved steps are {steps}")
  later = [s for s in steps if s > step]
  if later:
    aside = workdir / SET_ASIDE
    aside.mkdir(exist_ok=True)
    for s in later:
      target = aside / str(s)
      if target.exists():
        target = aside / f"{s}.{int(time.time())}"
      os.replace(workdir / "checkpoints" / str(s), target)
    logging.warning("restore_step %d: moved the later checkpoints %s to %s", step, later, aside)
  return later


def _first_line(e: BaseException) -> str:
  lines = [line.strip() for line in str(e).splitlines() if line.strip()]
  return f"{type(e).__name__}: {lines[0][:200] if lines else ''}"


def restore(ckpt, step: int, like):
  """``ckpt.restore(step, like)``; a checkpoint that cannot be restored is reported as such.

  The error names the step, the cause, and the latest earlier step that does
  restore (tried one by one), with the flag that resumes from it.
  """
  try:
    return ckpt.restore(step, like=like)
  except Exception as e:  # Orbax raises many types for a damaged or mismatched checkpoint
    where = ckpt.manager.directory
    intact = None
    for earlier in sorted((s for s in ckpt.all_steps() if s < step), reverse=True):
      try:
        ckpt.restore(earlier, like=like)
        intact = earlier
        break
      except Exception:  # noqa: BLE001 - any failure: try the next earlier step
        continue
    if intact is not None:
      hint = (f"step {intact} restores intact: restart with --restore_step={intact} to resume from "
              f"it (the later checkpoints are moved to {SET_ASIDE}/, not deleted)")
    else:
      hint = ("no earlier checkpoint restores either; if the config changed in a way that changes "
              "the parameters or the optimiser state, restore it, or use a new --workdir")
    raise CheckpointError(
        f"checkpoint: step {step} in {where} cannot be restored ({_first_line(e)}); {hint}") from e


class CheckpointError(RuntimeError):
  """A checkpoint that exists but cannot be restored (damaged, or from another config)."""
