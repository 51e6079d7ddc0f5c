"""A recurrent language model for streams: embedding -> stack -> softmax, with the carry in and out.

Shape legend: B batch (streams), T time, E embedding size, H hidden size, V vocabulary.

    e_t = E[x_t]                    (embedding dropout: whole rows of E dropped, Gal & Ghahramani 2016)
    h_t^(1..L), carries = Stack(drop(e_t), carries_in)    (dropout between layers: the stack's)
    logits_t = drop(h_t^(L)) W + b  (W = E^T when tied: Inan et al. 2017; Press & Wolf 2017)

``drop`` is the dropout of Zaremba et al. (2014) on the non-recurrent
connections only: the embedding output, between layers (the stack's own
dropout) and the last layer's output, a fresh mask at every step. With
``variational=True`` every one of those masks is drawn once per window and
shared over its T steps ("locked" dropout, Gal & Ghahramani 2016); the layers
then run one at a time so that the masks between them are locked too.
Recurrent connections are never dropped.

``init_scale > 0`` draws every parameter from U(-s, s), the recipe's
initialisation (the LSTM's forget-gate bias included); 0 keeps each part's
own initialiser. The carry is the stack's, one entry per layer, and a window
starts from ``carries`` and returns the carries at its end, so consecutive
windows are one long unroll (the basis of truncated BPTT).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from recurrent.cells.base import materialised_transpose
from recurrent.layers import Stack

Array = jax.Array


@jax.custom_vjp
def project(h_NH: Array, W_HV: Array, b_V: Array) -> Array:
  """h W + b, computed as one matmul [h, 1] [W; b], with its backward written out.

  The same value and the same gradients as ``h_NH @ W_HV + b_V``; only the
  order of work differs, for XLA's CPU backend:

  * the bias rides in the matmul (a row of ones on h, b as W's last row), so
    neither the [N, V] broadcast add of the forward pass nor the column sum of
    dlogits for db is a pass of its own: db is the last row of [h, 1]^T dlogits;
  * that weight gradient is an ordinary matmul of a materialised [H + 1, N]
    transpose (``cells.base.materialised_transpose``): autodiff's h^T dlogits contracts the first axes of both operands,
    for which XLA transposes the [N, V] dlogits (16 MB for PTB's 400 x 10,000
    window) and calls a slower matmul.

  PTB-small's head (N 400, H 200, V 10,000), forward + backward + cross-entropy,
  two cores: 22.3 ms with the bias added after the matmul, 21.1 ms folded
  (medians of 9 interleaved repetitions, session 7, docs/language_models.md).
  A custom VJP rather than ``cells.base.affine``: the LM step's peak memory is
  66 MiB this way, 74 MiB through ``affine``'s JVP (session 7).
  """
  return _with_ones(h_NH) @ jnp.concatenate([W_HV, b_V[None, :].astype(W_HV.dtype)], 0)


def _with_ones(h_NH: Array) -> Array:
  return jnp.concatenate([h_NH, jnp.ones((h_NH.shape[0], 1), h_NH.dtype)], 1)


def _project_fwd(h_NH, W_HV, b_V):
  return project(h_NH, W_HV, b_V), (h_NH, W_HV, b_V)


def _project_bwd(residuals, d_NV):
  h_NH, W_HV, b_V = residuals
  h1T_HN = materialised_transpose(_with_ones(h_NH))
  dWb = h1T_HN @ d_NV
  return ((d_NV @ W_HV.T).astype(h_NH.dtype), dWb[:-1].astype(W_HV.dtype),
          dWb[-1].astype(b_V.dtype))


project.defvjp(_project_fwd, _project_bwd)


def _dropout(rng: Array, rate: float, x: Array, shape: tuple[int, ...]) -> Array:
  """Inverted dropout of ``x`` with a mask of ``shape`` (broadcast over x's size-1 axes)."""
  keep = jax.random.bernoulli(rng, 1.0 - rate, shape)
  return jnp.where(keep, x / (1.0 - rate), 0.0)


@dataclasses.dataclass(frozen=True)
class StreamLM:
  """Parameters {"embed": [V, E], "stack": the stack's, "head": {"W": [H, V] (absent when tied), "b": [V]}}."""

  stack: Stack
  vocab_size: int
  dropout: float = 0.0          # non-recurrent connections: embedding output, between layers, output
  variational: bool = False     # one mask per window, shared over time
  embed_dropout: float = 0.0    # drop whole words (rows of the embedding), Gal & Ghahramani 2016
  tie_weights: bool = False     # the softmax weights are the embedding's transpose
  init_scale: float = 0.0       # > 0: every parameter ~ U(-init_scale, init_scale)

  def __post_init__(self):
    for name in ("dropout", "embed_dropout"):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f"model.{name}: must be in [0, 1), got {getattr(self, name)!r}")
    if self.stack.dropout != self.dropout:
      raise ValueError(f"stack dropout {self.stack.dropout} must equal model.dropout {self.dropout}")
    if any(layer.is_bidirectional for layer in self.stack.layers):
      raise ValueError("model.bidirectional: a language model must be unidirectional, got True")
    if self.tie_weights and self.stack.output_size != self.embed_size:
      raise ValueError(f"model.tie_weights: needs the last hidden size ({self.stack.output_size}) "
                       f"to equal the embedding size ({self.embed_size})")

  @property
  def embed_size(self) -> int:
    return self.stack.input_size

  def init(self, key: Array) -> dict:
    k_e, k_s, k_w, k_u = jax.random.split(key, 4)
    V, E, H = self.vocab_size, self.embed_size, self.stack.output_size
    params = {"embed": jax.random.normal(k_e, (V, E)) * E ** -0.5,
              "stack": self.stack.init(k_s),
              "head": {"b": jnp.zeros((V,))}}
    if not self.tie_weights:
      params["head"]["W"] = jax.random.normal(k_w, (H, V)) * H ** -0.5
    if self.init_scale > 0:
      leaves, tree = jax.tree.flatten(params)
      keys = jax.random.split(k_u, len(leaves))
      leaves = [jax.random.uniform(k, x.shape, x.dtype, -self.init_scale, self.init_scale)
                for k, x in zip(keys, leaves)]
      params = jax.tree.unflatten(tree, leaves)
    return params

  def initial_carries(self, batch_size: int) -> list:
    return [layer.cell.initial_carry((batch_size,)) for layer in self.stack.layers]

  def apply(self, params: dict, tokens_BT: Array, carries: Any = None,
            rng: Array | None = None) -> tuple[Array, list]:
    """(logits [B, T, V], carries at the window's end); dropout on when ``rng`` is given."""
    B, T = tokens_BT.shape
    train = rng is not None
    keys = list(jax.random.split(rng, 4)) if train else [None] * 4
    table_VE = params["embed"]
    if train and self.embed_dropout > 0:
      table_VE = _dropout(keys[0], self.embed_dropout, table_VE, (self.vocab_size, 1))
    x_BTE = table_VE[tokens_BT]
    mask_shape = lambda d: (B, 1, d) if self.variational else (B, T, d)
    if train and self.dropout > 0:
      x_BTE = _dropout(keys[1], self.dropout, x_BTE, mask_shape(self.embed_size))
    if carries is None:
      carries = self.initial_carries(B)
    if not (train and self.variational and self.dropout > 0):
      carries, h_BTH = self.stack.apply(params["stack"], x_BTE, None, carries, keys[2])
    else:  # locked masks between layers too: one layer at a time, the stack's connection rule
      h_BTH, new, stack = x_BTE, [], self.stack
      for i, (layer, p, c) in enumerate(zip(stack.layers, stack.layer_params(params["stack"]),
                                            carries)):
        c, y_BTH = layer.apply(p, h_BTH, None, c, stack.unroll, impl=stack.impl,
                               remat=stack.remat)
        h_BTH = stack.connect(i, params["stack"], h_BTH, y_BTH)
        if i < len(stack.layers) - 1:
          h_BTH = _dropout(jax.random.fold_in(keys[2], i), self.dropout, h_BTH,
                           mask_shape(h_BTH.shape[-1]))
        new.append(c)
      carries = new
    if train and self.dropout > 0:
      h_BTH = _dropout(keys[3], self.dropout, h_BTH, mask_shape(h_BTH.shape[-1]))
    W_HV = params["embed"].T if self.tie_weights else params["head"]["W"]
    logits_NV = project(h_BTH.reshape(B * T, -1), W_HV, params["head"]["b"])
    return logits_NV.reshape(B, T, -1), carries

  def step(self, params: dict, tokens_B: Array, carries: Any) -> tuple[Array, list]:
    """One token ahead, the decoding callback: (logits [B, V], carries)."""
    logits_B1V, carries = self.apply(params, tokens_B[:, None], carries)
    return logits_B1V[:, 0], carries
