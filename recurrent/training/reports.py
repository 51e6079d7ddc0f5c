"""Writing what a task's report has to show: ``write(report, workdir)``, every file atomically.

A task's ``report(params, step)`` returns a ``recurrent.tasks.base.Report``
(scalars; texts, JSON, running logs and figures keyed by file name); the
trainer calls ``write`` on process 0. Each file is written to a temporary
name in the same folder and renamed over the target (``os.replace``), so a
reader, or a run killed mid-write, never leaves half a file: a ``Log`` is
appended by writing the old content plus the new text the same way.
Figures are drawn by ``recurrent.training.plots`` from their descriptions.
CSV tables of the experiments (``write_csv``) go through the same rule.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from recurrent.tasks.base import Report
from recurrent.training import plots


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
  """Writes ``data`` to ``path`` atomically: a temporary file in the same folder, then a rename."""
  path = Path(path)
  tmp = path.with_name(f".{path.name}.tmp")
  try:
    tmp.write_bytes(data)
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)
  return path


def write_text(path: str | os.PathLike, text: str) -> Path:
  """Writes ``text`` (UTF-8) to ``path`` atomically."""
  return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> Path:
  """``data`` as indented JSON (one-space indent), atomically."""
  return write_text(path, json.dumps(data, indent=1))


def append_text(path: str | os.PathLike, text: str, header: str = "") -> Path:
  """Appends ``text`` to ``path`` (``header`` first when the file is new), atomically."""
  path = Path(path)
  old = path.read_text(encoding="utf-8") if path.exists() else header
  return write_text(path, old + text)


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
  """A CSV table (``header`` then ``rows``), atomically."""
  buf = io.StringIO(newline="")
  w = csv.writer(buf)
  w.writerow(header)
  w.writerows(rows)
  return write_text(path, buf.getvalue())


def check(report: Report, where: str = "task.report") -> Report:
  """Fails naming ``where`` when ``report`` is not a Report or a file name is not a plain name."""
  if not isinstance(report, Report):
    raise TypeError(f"{where}: must return a recurrent.tasks.base.Report, got "
                    f"{type(report).__name__}")
  names = report.files()
  for name in names:
    if not name or Path(name).name != name:
      raise ValueError(f"{where}: file names must be plain names in the workdir, got {name!r}")
  if len(set(names)) != len(names):
    raise ValueError(f"{where}: a file name is given twice: {sorted(names)}")
  for name in report.figures:
    if not name.endswith(".png"):
      raise ValueError(f"{where}: a figure's file name must end in .png, got {name!r}")
  return report


def write(report: Report, workdir: str | os.PathLike) -> list[Path]:
  """Writes every file of ``report`` into ``workdir`` (made if missing); returns their paths."""
  check(report)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  out = [write_text(workdir / name, text) for name, text in report.texts.items()]
  out += [write_json(workdir / name, data) for name, data in report.json.items()]
  out += [append_text(workdir / name, log.text, log.header) for name, log in report.logs.items()]
  out += [plots.draw(figure, workdir / name) for name, figure in report.figures.items()]
  return out
