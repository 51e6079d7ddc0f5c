"""Recurrent cells as pure functions over explicit parameter pytrees, and their registry."""

from __future__ import annotations

from recurrent.cells.base import Cell
from recurrent.cells.elman import Elman
from recurrent.cells.gru import GRU
from recurrent.cells.lstm import LSTM, LSTMCarry
from recurrent.cells.minimal import MinGRU, MinLSTM

# name -> (class, fixed keyword arguments). "rnn" is the tanh Elman RNN.
CELLS: dict[str, tuple[type[Cell], dict]] = {
    "rnn": (Elman, {"activation": "tanh"}),
    "rnn_tanh": (Elman, {"activation": "tanh"}),
    "rnn_relu": (Elman, {"activation": "relu"}),
    "lstm": (LSTM, {}),
    "gru": (GRU, {"reset_after": True}),
    "gru_reset_before": (GRU, {"reset_after": False}),
    "min_gru": (MinGRU, {}),     # Feng et al. 2024; parallel scan (unroll impl="associative")
    "min_lstm": (MinLSTM, {}),
}


def register_cell(name: str, cls: type[Cell], **fixed) -> None:
  """Adds a cell to the registry so that ``make_cell(name, ...)`` builds it."""
  CELLS[name] = (cls, fixed)


def make_cell(name: str, input_size: int, hidden_size: int, **kwargs) -> Cell:
  """Builds a registered cell by name; an unknown name fails listing the valid ones."""
  if name not in CELLS:
    raise ValueError(f"cell: unknown cell {name!r}; valid cells are {sorted(CELLS)}")
  cls, fixed = CELLS[name]
  return cls(input_size=input_size, hidden_size=hidden_size, **{**fixed, **kwargs})


__all__ = ["CELLS", "GRU", "LSTM", "Cell", "Elman", "LSTMCarry", "MinGRU", "MinLSTM", "make_cell", "register_cell"]
