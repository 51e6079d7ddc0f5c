"""The one check of an integer argument or config field: the type, the range, and a message naming it.

    check_int("task.epochs", t.epochs)                         # >= 1
    check_int("top_k", top_k, 0, note="0 keeps every token")   # >= 0
    check_int("layer", layer, -n, below=n)                     # in [-n, n)

fails as ``task.epochs: must be an integer >= 1, got 0`` or
``top_k: must be an integer >= 0 (0 keeps every token), got -1``. An integer
is a Python or NumPy integer (``numbers.Integral``) and never a bool, which
Python counts as an int (``True == 1``): a flag given where a count belongs
is an error, not 1. A field that may also be None checks only when it is not.
"""

from __future__ import annotations

import numbers
from typing import Any


def check_int(name: str, value: Any, least: int = 1, *, below: int | None = None,
              note: str = "") -> None:
  """Raises ValueError unless ``least <= value`` (and ``value < below`` when given), an integer.

  ``name`` is the field or argument as the user writes it; ``note`` (what a value means, its
  unit) goes in parentheses after the range.
  """
  ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least
  if ok and (below is None or value < below):
    return
  expected = f">= {least}" if below is None else f"in [{least}, {below})"
  raise ValueError(f"{name}: must be an integer {expected}{f' ({note})' if note else ''}, "
                   f"got {value!r}")
