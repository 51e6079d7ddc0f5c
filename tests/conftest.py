"""Test settings: strict rank promotion, so an accidental broadcast fails loudly; glibc's allocator.

``RECURRENT_KEEP_FREED_MEMORY=0``: test processes (and the binaries they start)
keep glibc's malloc defaults even when they import ``experiments``; the suite's
compile-heavy processes were not faster with them (recurrent/host_memory.py).
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("RECURRENT_KEEP_FREED_MEMORY", "0")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
