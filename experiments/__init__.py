"""The project's binaries (``python -m experiments.NAME`` or ``./launch.sh NAME``).

Importing the package (which ``python -m experiments.NAME`` does first) keeps
freed host memory in the process for XLA:CPU's per-step buffers
(``recurrent.host_memory.keep_freed_memory``: no page faults on every large
buffer at every step; measured in docs/PERFORMANCE.md). It changes no value.
``RECURRENT_KEEP_FREED_MEMORY=0`` leaves glibc's defaults (to measure them).
"""

import os

from recurrent import host_memory

_KEEP = os.environ.get("RECURRENT_KEEP_FREED_MEMORY", "1")
if _KEEP not in ("0", "1"):
  raise ValueError(f"RECURRENT_KEEP_FREED_MEMORY: must be 0 or 1, got {_KEEP!r}")
KEEP_FREED_MEMORY = _KEEP == "1"  # what this process does (the benchmark records it)
if KEEP_FREED_MEMORY:
  host_memory.keep_freed_memory()
