"""Test settings: strict rank promotion, so an accidental broadcast fails loudly."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
