"""Flax linen wrappers: the parameters live in a Flax module, the recurrence stays plain JAX.

    model = RNN(cell="lstm", hidden_sizes=(128, 128), bidirectional=True)
    variables = model.init(key, x_BTD, lengths_B)
    carries, y_BTH = model.apply(variables, x_BTD, lengths_B)
    # training, with dropout between layers:
    carries, y = model.apply(variables, x, lengths, deterministic=False,
                             rngs={"dropout": key})

The parameters of the whole stack are one pytree under the name "stack",
laid out exactly as ``recurrent.layers.Stack.init`` returns them, so the pure
functions and the module are interchangeable.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn

from recurrent.cells import Cell
from recurrent.layers import Stack, make_stack


class RNN(nn.Module):
  """A stack of recurrent layers as a Flax module.

  Attributes:
    cell: a name from ``recurrent.cells.CELLS`` ("rnn", "rnn_relu", "lstm", "gru", ...) or a
      cell object (any ``recurrent.cells.Cell``; its sizes are replaced per layer), so a
      user's own cell plugs in without the registry.
    hidden_sizes: one hidden size per layer.
    bidirectional: run each layer in both directions with separate weights.
    merge: how directions join, "concat" or "sum".
    dropout: dropout rate between layers (active when deterministic=False).
    residual: add each layer's input to its output where sizes match.
    highway: a learned gate between each layer's input and output where sizes match
      (``recurrent.layers.Stack``); the parameters are then {"layers": ..., "highway": ...}.
    unroll: steps per scan iteration.
    impl: "auto", "hoisted", "scan" or "associative" (see ``recurrent.layers.unroll``).
    remat: > 0 checkpoints chunks of this many steps (memory for time on long sequences).
    cell_kwargs: extra keyword arguments of the cell (forget_bias, peephole, ...).
  """

  cell: str | Cell = "lstm"
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

  def stack(self, input_size: int) -> Stack:
    return make_stack(self.cell, input_size, self.hidden_sizes, self.bidirectional,
                      self.merge, self.dropout, self.residual, self.highway, unroll=self.unroll,
                      impl=self.impl, remat=self.remat, **(self.cell_kwargs or {}))

  @nn.compact
  def __call__(self, xs, lengths=None, initial_carries=None, deterministic: bool = True):
    stack = self.stack(xs.shape[-1])
    params = self.param("stack", lambda key: stack.init(key))
    rng = None
    if not deterministic and self.dropout > 0.0:
      rng = self.make_rng("dropout")
    return stack.apply(params, xs, lengths, initial_carries, rng, self.unroll, impl=self.impl,
                       remat=self.remat)


def output_size(module: RNN, input_size: int) -> int:
  """The size of the module's outputs for a given input size."""
  return module.stack(input_size).output_size


__all__ = ["RNN", "output_size"]
