"""Host memory for XLA:CPU: freed buffers stay in the process instead of going back to the OS.

    from recurrent import host_memory
    host_memory.keep_freed_memory()   # once, at the start of a program; the binaries in experiments/ do it

Each call of a jitted step on the CPU allocates its outputs and large
temporaries afresh and frees them when they die. glibc's ``malloc`` serves a
request above its mmap threshold (128 KiB at start, raised as large blocks are
freed, to at most 32 MiB) with a new ``mmap`` and unmaps it on ``free``, and
it gives the top of its heap back to the OS above a trim threshold (twice the
mmap threshold). Threads other than the main one allocate from arenas of
their own, heaps of at most 64 MiB that are mapped and unmapped as they fill
and empty; XLA's worker threads allocate and free buffers. Every page of such
a buffer then faults in again on first touch, at every step: the kernel
zero-fills 4 KiB at a time before the computation writes it. Measured on
this project's 2-core CPU (one core, ``jnp.exp`` of a float32 array, median
of 7 x 10 calls, session 6):
[12800, 2048] (105 MB, the [T B, 4H] gate buffer of the benchmark's large
LSTM) 77 ms with glibc's defaults, 26 ms after ``keep_freed_memory()``.

``keep_freed_memory()`` sets both thresholds high with ``mallopt``, and one
arena for every thread: requests up to 1 GiB come from the main heap, which
is not trimmed below 2 GiB of free top. The PTB-small LM step (the
benchmark's ``lm`` suite, ours alone, 2 threads, 3 processes of 90 steps
each way) went from 12,000 minor page faults per step to 0-134, and from
58-71 ms to 43-62 ms per step (the same process-to-process spread; each
tuned run was faster than the untuned run beside it). The thresholds alone,
without the single arena, left 7,000-11,000 faults per step. What it costs:
the process's resident memory stays near its peak after the peak (freed
blocks are reused by the next step, not returned), which is what a training
or serving process does anyway. It changes no value: only where ``malloc``
takes memory from. Where little time goes into large buffers it does not
pay: the test suite's processes (many compilations, small arrays) were not faster with it (three
test files 177 s without, 212 s with; ``tests/test_engine.py`` 77 / 71 s
without, 83 / 69 s with, alternated), so ``tests/`` leaves glibc's defaults.

Process-wide, so it is called at the edges (``experiments/``), not on import:
a program that embeds the library decides for itself. It affects every library
in the process (PyTorch's CPU allocator also uses ``malloc``), so the
benchmark's peers get it too. Not glibc (macOS, musl): nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1   # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 1 << 30      # bytes: larger requests are still mmapped (and unmapped on free)
TRIM_THRESHOLD = 2**31 - 1    # bytes of free heap top kept (mallopt takes an int)


@functools.lru_cache(maxsize=None)
def _glibc():
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.gnu_get_libc_version.restype = ctypes.c_char_p
    libc.gnu_get_libc_version()
  except (OSError, AttributeError):
    return None  # not glibc
  return libc


def keep_freed_memory() -> bool:
  """glibc malloc: high mmap and trim thresholds, one arena (see the module docstring); True if applied.

  Call it before the threads that allocate start (before JAX's first
  computation); ``experiments/__init__.py`` does, on import.

  Idempotent. Returns False, changing nothing, where the C library is not glibc.
  """
  libc = _glibc()
  if libc is None:
    return False
  ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
  ok &= libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
  ok &= libc.mallopt(_M_ARENA_MAX, 1) == 1  # threads that have an arena already keep it
  if not ok:
    raise RuntimeError("glibc mallopt refused M_MMAP_THRESHOLD, M_TRIM_THRESHOLD or M_ARENA_MAX")
  return True
