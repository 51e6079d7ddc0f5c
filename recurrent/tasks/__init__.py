"""Tasks by name: ``recurrent/tasks/<name>.py`` defines ``build(config) -> Task``.

``get_task(config)`` imports the module named by ``config.task.name``; an
unknown name fails listing the valid ones. One module per task keeps the
registry free of a central list that every experiment would have to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

from recurrent.tasks.base import Task

_NOT_TASKS = {"base"}


def task_names() -> list[str]:
  """The names of every task module in this package."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__)
                if m.name not in _NOT_TASKS and not m.name.startswith("_"))


def get_task(config) -> Task:
  """Builds the task named ``config.task.name`` from the whole config."""
  name = config.task.name
  if name not in task_names():
    raise ValueError(f"task.name: unknown task {name!r}; valid tasks are {task_names()}")
  return importlib.import_module(f"recurrent.tasks.{name}").build(config)


__all__ = ["Task", "get_task", "task_names"]
