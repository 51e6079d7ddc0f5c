"""recurrent: recurrent neural networks as pure JAX functions.

The functional core lives in :mod:`recurrent.cells` (one step of a cell) and
:mod:`recurrent.layers` (unrolling with ``jax.lax.scan``: masking, reverse,
bidirectional, stacks). :mod:`recurrent.nn` wraps them as Flax linen modules.
"""

from recurrent.cells import (
    CELLS,
    GRU,
    LSTM,
    Cell,
    Elman,
    LSTMCarry,
    make_cell,
)
from recurrent.layers import Layer, Stack, bidirectional, make_stack, reverse_padded, unroll

__all__ = [
    "CELLS",
    "GRU",
    "LSTM",
    "Cell",
    "Elman",
    "LSTMCarry",
    "Layer",
    "Stack",
    "bidirectional",
    "make_cell",
    "make_stack",
    "reverse_padded",
    "unroll",
]
