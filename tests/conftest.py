"""Test settings: strict rank promotion, so an accidental broadcast fails loudly; glibc's allocator;
XLA:CPU code generated at LLVM optimisation level 0.

``--xla_backend_optimization_level=0``: the suite is compile-bound (XLA:CPU's LLVM
passes were about two thirds of the translation smoke test's time) and runs tiny
arrays, so unoptimised code is the faster trade: the whole suite on 2 cores
483 -> 368 s, every test passing either way (session 7). Experiments and the
benchmark keep XLA's default level; this applies only to test processes and the
binaries they start. An ``XLA_FLAGS`` set by the caller wins.

``RECURRENT_KEEP_FREED_MEMORY=0``: test processes (and the binaries they start)
keep glibc's malloc defaults even when they import ``experiments``; the suite's
compile-heavy processes were not faster with them (recurrent/host_memory.py).
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false --xla_backend_optimization_level=0")
os.environ.setdefault("RECURRENT_KEEP_FREED_MEMORY", "0")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
