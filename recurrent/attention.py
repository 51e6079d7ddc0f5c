"""Attention over a padded source: Bahdanau (additive) and Luong (dot, general).

Shape legend: B batch, S source time, E key size (encoder output), Q query
size (decoder state), A attention size.

For a query q (the decoder state) and keys k_1..k_S (encoder outputs, also
the values), the alignment scores are

    "bahdanau":      e_s = v^T tanh(W_q q + W_k k_s + b)     (Bahdanau et al. 2015, eq. 6)
    "luong_dot":     e_s = q^T k_s                            (Luong et al. 2015, eq. 8; needs Q = E)
    "luong_general": e_s = q^T W_a k_s                        (Luong et al. 2015, eq. 8)

and, with the source mask m_s (True at real tokens),

    a_s = exp(e_s) [m_s] / sum_s' exp(e_s') [m_s'],      context c = sum_s a_s k_s.

Padding gets exactly zero weight, so it changes neither the weights on real
tokens nor the context. The key-side projection (W_k k_s for "bahdanau",
W_a k_s for "luong_general") does not depend on the query: ``precompute``
does it once per source sentence, outside the decoder's loop.
Weights are laid out (in, out).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from recurrent.cells.base import Array, expand_like
from recurrent.checks import check_int

KINDS = ("bahdanau", "luong_dot", "luong_general")


@dataclasses.dataclass(frozen=True)
class Attention:
  """One attention mechanism; see the module docstring for the equations."""

  kind: str
  query_size: int
  key_size: int
  attn_size: int = 0  # A, the hidden size of the additive score (bahdanau only)

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"kind: unknown attention {self.kind!r}; valid kinds are {list(KINDS)}")
    check_int("query_size", self.query_size)
    check_int("key_size", self.key_size)
    if self.kind == "bahdanau":
      check_int("attn_size", self.attn_size)
    if self.kind == "luong_dot" and self.query_size != self.key_size:
      raise ValueError(f"query_size: luong_dot needs query_size == key_size={self.key_size}, "
                       f"got {self.query_size}")

  def init(self, key: Array) -> dict:
    lecun = jax.nn.initializers.lecun_normal()
    if self.kind == "luong_dot":
      return {}
    if self.kind == "luong_general":
      return {"W_a": lecun(key, (self.key_size, self.query_size))}
    k_q, k_k, k_v = jax.random.split(key, 3)
    A = self.attn_size
    return {"W_q": lecun(k_q, (self.query_size, A)), "W_k": lecun(k_k, (self.key_size, A)),
            "b": jnp.zeros((A,)), "v": lecun(k_v, (A, 1))[:, 0]}

  def precompute(self, params: dict, keys_BSE: Array) -> Array:
    """The query-independent part: W_k k_s + b [B, S, A], W_a k_s [B, S, Q], or k_s itself."""
    if jnp.ndim(keys_BSE) != 3 or jnp.shape(keys_BSE)[2] != self.key_size:
      raise ValueError(f"keys_BSE: expected shape [B, S, E] with E = key_size={self.key_size}, "
                       f"got {tuple(jnp.shape(keys_BSE))}")
    if self.kind == "bahdanau":
      kp = keys_BSE @ params["W_k"]
      return kp + expand_like(params["b"], kp)
    if self.kind == "luong_general":
      return keys_BSE @ params["W_a"]
    return keys_BSE

  def __call__(self, params: dict, query_BQ: Array, keys_BSE: Array, projected_BSX: Array,
               mask_BS: Array) -> tuple[Array, Array]:
    """(context [B, E], weights [B, S]) for one query per row.

    ``projected_BSX`` is ``precompute(params, keys_BSE)``; ``mask_BS`` is True
    at real source tokens (every row needs at least one).
    """
    B, S, E = jnp.shape(keys_BSE)
    if jnp.shape(query_BQ) != (B, self.query_size):
      raise ValueError(f"query_BQ: expected shape [B, Q]=({B}, {self.query_size}), got "
                       f"{tuple(jnp.shape(query_BQ))}")
    if jnp.shape(mask_BS) != (B, S):
      raise ValueError(f"mask_BS: expected shape [B, S]=({B}, {S}) like keys_BSE, got "
                       f"{tuple(jnp.shape(mask_BS))}")
    if self.kind == "bahdanau":
      hidden_BSA = jnp.tanh(projected_BSX + (query_BQ @ params["W_q"])[:, None, :])
      scores_BS = hidden_BSA @ params["v"]
    else:
      scores_BS = jnp.einsum("bsq,bq->bs", projected_BSX, query_BQ)
    weights_BS = masked_softmax(scores_BS, mask_BS)
    context_BE = jnp.einsum("bs,bse->be", weights_BS, keys_BSE)
    return context_BE, weights_BS


def masked_softmax(scores_BS: Array, mask_BS: Array) -> Array:
  """softmax over the positions where ``mask_BS`` is True; exactly 0 elsewhere."""
  scores_BS = jnp.where(mask_BS, scores_BS, -jnp.inf)
  # A row with no real position would be all -inf; keep it finite (weights 0).
  m_B1 = jnp.max(jnp.where(mask_BS, scores_BS, jnp.finfo(scores_BS.dtype).min), -1, keepdims=True)
  e_BS = jnp.where(mask_BS, jnp.exp(scores_BS - jax.lax.stop_gradient(m_B1)), 0.0)
  return e_BS / jnp.maximum(e_BS.sum(-1, keepdims=True), jnp.finfo(scores_BS.dtype).tiny)


__all__ = ["Attention", "KINDS", "masked_softmax"]
