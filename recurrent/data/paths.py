"""Where the data files are: an explicit path, or a path relative to $RECURRENT_DATA_DIR.

    data_file("", "polyphonic_music/JSB_Chorales.mat")      # $RECURRENT_DATA_DIR/polyphonic_music/...
    data_file("/data", "polyphonic_music/JSB_Chorales.mat")  # /data/polyphonic_music/...
    data_file("/elsewhere/jsb.mat", "polyphonic_music/JSB_Chorales.mat")  # a file given directly

``RECURRENT_DATA_DIR`` names a folder laid out like ``shared/data`` (see its
README for sources and licenses). A missing file fails naming the file that
was expected and how to point at it.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "RECURRENT_DATA_DIR"


def data_file(path: str | os.PathLike | None, relpath: str) -> Path:
  """The file (or folder) ``relpath`` under ``path`` (or $RECURRENT_DATA_DIR); ``path`` may also be it."""
  if not path:
    if not os.environ.get(ENV):
      raise FileNotFoundError(
          f"data: no path given and ${ENV} is not set; expected the file {relpath!r} under a data "
          f"folder (set {ENV}=/path/to/data or pass the path, e.g. --config.task.data_dir=...)")
    path = os.environ[ENV]
  p = Path(path)
  if p.exists() and p.name == Path(relpath).name:  # the file or folder itself
    return p
  candidate = p / relpath
  if not candidate.exists():
    raise FileNotFoundError(
        f"data: expected the file {str(candidate)!r} ({relpath!r} under the data folder {str(p)!r}); "
        f"see shared/data/README.md for where it comes from")
  return candidate
