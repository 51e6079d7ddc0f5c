r"""recurrent: recurrent neural networks as pure JAX functions.

The functional core lives in :mod:`recurrent.cells` (one step of a cell) and
:mod:`recurrent.layers` (unrolling with ``jax.lax.scan``: masking, reverse,
bidirectional, stacks). :mod:`recurrent.nn` wraps them as Flax linen modules.

The cells' recurrences, as their modules state them (row vectors: inputs
multiply weights on the right; :mod:`recurrent.cells.elman`,
:mod:`recurrent.cells.lstm`, :mod:`recurrent.cells.gru` give gate orders,
layouts and how other libraries' weights map), the Elman RNN

$$h_t = g(x_t W_x + h_{t-1} W_h + b), \qquad g \in \lbrace \tanh, \mathrm{relu} \rbrace$$

the LSTM without peepholes,

$$[i, f, g, o] = x_t W_x + h_{t-1} W_h + b$$

$$c_t = \sigma(f) \odot c_{t-1} + \sigma(i) \odot \tanh(g), \qquad h_t = \sigma(o) \odot \tanh(c_t)$$

and the GRU, whose two forms differ in where the reset gate enters:

$$r_t = \sigma(x_t W_{xr} + h_{t-1} W_{hr} + b_r), \qquad z_t = \sigma(x_t W_{xz} + h_{t-1} W_{hz} + b_z)$$

$$n_t = \tanh\big(x_t W_{xn} + b_n + r_t \odot (h_{t-1} W_{hn} + b_{hn})\big) \quad \text{(reset after: cuDNN, PyTorch, Keras, Flax)}$$

$$n_t = \tanh\big(x_t W_{xn} + b_n + (r_t \odot h_{t-1}) W_{hn}\big) \quad \text{(reset before: Cho 2014, Chung 2014)}$$

$$h_t = z_t \odot h_{t-1} + (1 - z_t) \odot n_t$$
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
