"""Models built from a recurrent stack: many-to-one, many-to-many and language models.

Shape legend: B batch, T time, D input features, H hidden, V vocabulary,
C outputs (classes or regression targets).

    SequenceClassifier   x_BT(D) -> RNN -> pool over time -> Dense -> [B, C]
    SequenceTagger       x_BT(D) -> RNN -> Dense at every step   -> [B, T, C]
    LanguageModel        tokens_BT -> Embed -> RNN -> Dense      -> [B, T, V], plus one-step decoding

Inputs are token ids when ``vocab_size`` is set (an embedding table of
``embed_size``), float features [B, T, D] otherwise. Pooling (seed 003:
sentence encoding by the last state, or the element-wise max or mean of all
hidden states) always ignores padding.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from recurrent.checks import check_int
from recurrent.layers import Stack, make_stack, time_mask
from recurrent.nn import RNN

POOLINGS = ("last", "mean", "max")


def final_hidden(stack: Stack, carries: list) -> jax.Array:
  """h of the last layer at each sequence's end: [B, out] (forward and backward joined like the outputs).

  For a bidirectional layer the backward direction's final state is the one
  after reading the whole sequence backward, i.e. at position 0.
  """
  layer = stack.layers[-1]
  carry = carries[-1]
  if not layer.is_bidirectional:
    return layer.cell.hidden(carry)
  h_fw, h_bw = (layer.cell.hidden(c) for c in carry)
  return jnp.concatenate([h_fw, h_bw], -1) if layer.merge == "concat" else h_fw + h_bw


def pool(ys_BTH: jax.Array, lengths_B: jax.Array | None, last_BH: jax.Array, how: str) -> jax.Array:
  """Sentence encoding from the hidden states: 'last', 'mean' or 'max' over valid steps -> [B, H]."""
  if how == "last":
    return last_BH
  B, T, _ = ys_BTH.shape
  lengths_B = jnp.full((B,), T) if lengths_B is None else jnp.asarray(lengths_B)
  mask_BT1 = time_mask(lengths_B, T)[..., None]
  if how == "mean":
    total_BH = jnp.sum(jnp.where(mask_BT1, ys_BTH, 0.0), axis=1)
    return total_BH / jnp.maximum(lengths_B, 1)[:, None].astype(ys_BTH.dtype)
  if how == "max":
    masked = jnp.where(mask_BT1, ys_BTH, -jnp.inf)
    return jnp.where(lengths_B[:, None] > 0, jnp.max(masked, axis=1), 0.0)
  raise ValueError(f"pooling: must be one of {POOLINGS}, got {how!r}")


class _Recurrent(nn.Module):
  """Shared fields and the input side (embedding or features) of every model here."""

  cell: str = "lstm"
  hidden_sizes: Sequence[int] = (128,)
  bidirectional: bool = False
  merge: str = "concat"
  dropout: float = 0.0
  residual: bool = False
  highway: bool = False
  unroll: int = 1
  impl: str = "auto"
  remat: int = 0
  cell_kwargs: dict[str, Any] | None = None
  vocab_size: int | None = None   # token-id inputs when set; float features otherwise
  embed_size: int = 64

  def stack(self, input_size: int) -> Stack:
    """The pure stack this module's RNN runs (no Flax scope needed)."""
    return make_stack(self.cell, input_size, self.hidden_sizes, self.bidirectional,
                      self.merge, self.dropout, self.residual, self.highway, unroll=self.unroll,
                      impl=self.impl, remat=self.remat, **(self.cell_kwargs or {}))

  def rnn(self) -> RNN:
    return RNN(self.cell, tuple(self.hidden_sizes), self.bidirectional, self.merge, self.dropout,
               self.residual, self.highway, self.unroll, self.impl, self.remat,
               cell_kwargs=self.cell_kwargs, name="rnn")

  def embed_inputs(self, inputs):
    if self.vocab_size is None:
      return inputs
    check_int("embed_size", self.embed_size)
    if not jnp.issubdtype(inputs.dtype, jnp.integer):
      raise ValueError(f"inputs: expected token ids (vocab_size={self.vocab_size}), got {inputs.dtype}")
    return nn.Embed(self.vocab_size, self.embed_size, name="embed")(inputs)


class SequenceClassifier(_Recurrent):
  """Many-to-one: pooled hidden states -> C logits (or C regression outputs)."""

  num_outputs: int = 2
  pooling: str = "last"

  @nn.compact
  def __call__(self, inputs, lengths=None, deterministic: bool = True, head: bool = True,
               pooling: str | None = None):
    """Logits [B, C]; with ``head=False`` the sentence encoding [B, H] the head reads (see ``encode``)."""
    pooling = self.pooling if pooling is None else pooling
    if pooling not in POOLINGS:
      raise ValueError(f"pooling: must be one of {POOLINGS}, got {pooling!r}")
    x_BTD = self.embed_inputs(inputs)
    rnn = self.rnn()
    carries, ys_BTH = rnn(x_BTD, lengths, deterministic=deterministic)
    last_BH = final_hidden(self.stack(x_BTD.shape[-1]), carries)
    z_BH = pool(ys_BTH, lengths, last_BH, pooling)
    if not head:
      return z_BH
    return nn.Dense(self.num_outputs, name="head")(z_BH)

  def encode(self, inputs, lengths=None, deterministic: bool = True, pooling: str | None = None):
    """The sentence encoding [B, H] (seed 003): the pooled hidden states, padding excluded.

    ``pooling`` defaults to the model's own (the vector its head reads); 'last',
    'mean' or 'max' pools the same states another way. Call it as
    ``model.apply(variables, x, lengths, method="encode")``.
    """
    return self(inputs, lengths, deterministic, head=False, pooling=pooling)


class SequenceTagger(_Recurrent):
  """Many-to-many, aligned: one C-way output per input step (zeros past each length)."""

  num_outputs: int = 2

  @nn.compact
  def __call__(self, inputs, lengths=None, deterministic: bool = True):
    x_BTD = self.embed_inputs(inputs)
    _, ys_BTH = self.rnn()(x_BTD, lengths, deterministic=deterministic)
    return nn.Dense(self.num_outputs, name="head")(ys_BTH)


class LanguageModel(_Recurrent):
  """Next-token model: logits for token t+1 from tokens up to t. Unidirectional by construction.

  ``__call__(tokens_BT, lengths)`` -> logits [B, T, V] (teacher forcing);
  ``step(tokens_B, carries)`` -> (logits [B, V], carries) advances one token,
  the callback a decoder (greedy, sampling) drives; ``initial_carries(B)``.
  """

  @nn.compact
  def __call__(self, tokens, lengths=None, initial_carries=None, deterministic: bool = True):
    if self.bidirectional:
      raise ValueError("bidirectional: a language model must be unidirectional, got True")
    x_BTD = self.embed_inputs(tokens)
    carries, ys_BTH = self.rnn()(x_BTD, lengths, initial_carries, deterministic=deterministic)
    return nn.Dense(self.vocab_size, name="head")(ys_BTH), carries

  def initial_carries(self, batch_size: int) -> list:
    return self.stack(self.embed_size).initial_carries((batch_size,))

  def step(self, tokens_B, carries):
    """One step of the stack, token ids [B] -> (logits [B, V], new carries). Call via apply(method=...)."""
    logits_B1V, carries = self(tokens_B[:, None], None, carries)
    return logits_B1V[:, 0], carries


RNN_FIELDS = ("cell", "hidden_sizes", "bidirectional", "merge", "dropout", "residual", "highway",
              "unroll", "impl", "remat")
PARAM_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16,
                "float64": jnp.float64}


def rnn_kwargs(model_config) -> dict:
  """The recurrent-stack fields of a ``config.model`` section (configs/base.py), as keyword arguments.

  Usage: ``SequenceClassifier(**rnn_kwargs(config.model), num_outputs=2, pooling="max")``.
  ``model.param_dtype`` (a name in ``PARAM_DTYPES``) becomes the cells' weight dtype;
  their carries stay float32.
  """
  kwargs = {f: model_config[f] for f in RNN_FIELDS if f in model_config}
  kwargs["hidden_sizes"] = tuple(kwargs["hidden_sizes"])
  for field, least in (("unroll", 1), ("remat", 0)):
    check_int(f"model.{field}", kwargs.get(field, least), least)
  dtype = model_config.get("param_dtype", "float32")
  if dtype not in PARAM_DTYPES:
    raise ValueError(f"model.param_dtype: must be one of {sorted(PARAM_DTYPES)}, got {dtype!r}")
  if dtype != "float32":
    kwargs["cell_kwargs"] = {"param_dtype": PARAM_DTYPES[dtype]}
  return kwargs


def stack_kwargs(model_config, *fields: str) -> dict:
  """``make_stack`` keyword arguments from a ``config.model`` section (after cell, sizes).

  With ``fields`` only those (and the cell keyword ``param_dtype``), for a
  model with a fixed structure: ``stack_kwargs(m, "unroll", "impl", "remat")``.
  Usage: ``make_stack(m.cell, D, m.hidden_sizes, **stack_kwargs(m))``.
  """
  kwargs = rnn_kwargs(model_config)
  cell_kwargs = kwargs.pop("cell_kwargs", {})
  kwargs = {k: v for k, v in kwargs.items() if k not in ("cell", "hidden_sizes")}
  if fields:
    kwargs = {k: v for k, v in kwargs.items() if k in fields}
  return {**kwargs, **cell_kwargs}
