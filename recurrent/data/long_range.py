"""Synthetic long-range tasks with a configurable delay T, as pure functions of an rng key.

Shape legend: B batch, T the delay (sequence length, or the gap to bridge).

Each generator draws a whole batch from ``key`` alone, so a batch for step s
is ``generator(fold_in(key, s), ...)``. Next to each, the loss of the best
predictor that has no memory of the past: a model has learnt the task only
when it beats that baseline.

adding (Hochreiter & Schmidhuber 1997; the form of Le et al. 2015 and
  Arjovsky et al. 2016): x [B, T, 2], channel 0 values u_t ~ U(0, 1), channel
  1 two markers, one in the first half and one in the second; the target is
  the sum of the two marked values. Predicting the constant 1 = E[u + u']
  scores MSE = Var(u + u') = 2 * 1/12 = 1/6, the best constant predictor.
copy memory (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): inputs
  [B, T + 20]: 10 symbols from {1..8}, T - 1 blanks (0), the delimiter 9, 10
  blanks; targets: T + 10 blanks then the 10 symbols. Predicting blank for
  the first T + 10 steps and uniform over the 8 symbols for the last 10
  scores cross-entropy 10 ln 8 / (T + 20) per step.
first token: inputs [B, T + 1]: T symbols from {1..V} then the query token
  0; the next token after the query is the first symbol. A predictor that
  has forgotten it scores at best ln V (uniform over the V symbols).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from recurrent.checks import check_int

Array = jax.Array

COPY_BLANK, COPY_DELIMITER = 0, 9     # copy memory: symbols are 1..8
FIRST_TOKEN_QUERY = 0                 # first token: symbols are 1..V


def adding(key: Array, batch_size: int, delay: int) -> dict[str, Array]:
  """{"inputs": [B, T, 2] float32, "targets": [B] float32}; T = ``delay`` >= 2."""
  check_int("batch_size", batch_size)
  check_int("delay", delay, 2)
  k_u, k_a, k_b = jax.random.split(key, 3)
  half = delay // 2
  u_BT = jax.random.uniform(k_u, (batch_size, delay))
  first_B = jax.random.randint(k_a, (batch_size,), 0, half)
  second_B = jax.random.randint(k_b, (batch_size,), half, delay)
  t = jnp.arange(delay)[None, :]
  marks_BT = ((t == first_B[:, None]) | (t == second_B[:, None])).astype(jnp.float32)
  return {"inputs": jnp.stack([u_BT, marks_BT], axis=-1),
          "targets": jnp.sum(u_BT * marks_BT, axis=1)}


def adding_baseline() -> float:
  """MSE of always predicting 1: Var(u + u') for independent u, u' ~ U(0, 1) = 1/6."""
  return 1.0 / 6.0


def copy_memory(key: Array, batch_size: int, delay: int, num_symbols: int = 8,
                copy_length: int = 10) -> dict[str, Array]:
  """{"inputs", "targets"}: int32 [B, T + 2 * copy_length]; ids 0 blank, 1..8 symbols, 9 delimiter."""
  check_int("batch_size", batch_size)
  check_int("delay", delay)
  check_int("copy_length", copy_length)
  if not 1 <= num_symbols <= COPY_DELIMITER - 1:
    raise ValueError(f"num_symbols must be in [1, {COPY_DELIMITER - 1}], got {num_symbols!r}")
  symbols_BC = jax.random.randint(key, (batch_size, copy_length), 1, num_symbols + 1)
  blanks = lambda n: jnp.full((batch_size, n), COPY_BLANK, jnp.int32)  # noqa: E731
  inputs = jnp.concatenate([symbols_BC, blanks(delay - 1),
                            jnp.full((batch_size, 1), COPY_DELIMITER, jnp.int32),
                            blanks(copy_length)], axis=1)
  targets = jnp.concatenate([blanks(delay + copy_length), symbols_BC], axis=1)
  return {"inputs": inputs.astype(jnp.int32), "targets": targets.astype(jnp.int32)}


def copy_memory_baseline(delay: int, num_symbols: int = 8, copy_length: int = 10) -> float:
  """Cross-entropy per step of the memoryless predictor: copy_length ln(num_symbols) / (T + 2 copy_length)."""
  return copy_length * math.log(num_symbols) / (delay + 2 * copy_length)


def first_token(key: Array, batch_size: int, delay: int, num_symbols: int = 8) -> dict[str, Array]:
  """{"inputs": int32 [B, T + 1] (T symbols, then the query 0), "targets": int32 [B] (the first symbol)}."""
  check_int("batch_size", batch_size)
  check_int("delay", delay)
  check_int("num_symbols", num_symbols)
  symbols_BT = jax.random.randint(key, (batch_size, delay), 1, num_symbols + 1)
  query = jnp.full((batch_size, 1), FIRST_TOKEN_QUERY, jnp.int32)
  return {"inputs": jnp.concatenate([symbols_BT, query], axis=1).astype(jnp.int32),
          "targets": symbols_BT[:, 0].astype(jnp.int32)}


def first_token_baseline(num_symbols: int = 8) -> float:
  """Cross-entropy of a predictor that has forgotten the first symbol: ln V."""
  return math.log(num_symbols)
