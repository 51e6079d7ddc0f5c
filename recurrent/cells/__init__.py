"""Recurrent cells as pure functions over explicit parameter pytrees, and their registry.

A cell is named by a registered name, optionally followed by field values:
``"lstm"``, ``"lstm:forget_bias=0"``, ``"gru:chrono=200"``,
``"rnn:recurrent_init=glorot"``, ``"lru:r_min=0.5,max_phase=6.28"``. The values
are parsed to the type of the field's default (int, float, bool, str; an
initialiser field takes a name of ``base.RECURRENT_INITS``), so a config can
choose any cell field through its one string ``model.cell``.
"""

from __future__ import annotations

import dataclasses

import jax

from recurrent.cells.base import RECURRENT_INITS, Cell
from recurrent.cells.elman import Elman
from recurrent.cells.gru import GRU
from recurrent.cells.lru import LRU, LRUCarry
from recurrent.cells.lstm import LSTM, LSTMCarry
from recurrent.cells.minimal import MinGRU, MinLSTM
from recurrent.cells.rg_lru import RGLRU

# name -> (class, fixed keyword arguments). "rnn" is the tanh Elman RNN.
CELLS: dict[str, tuple[type[Cell], dict]] = {
    "rnn": (Elman, {"activation": "tanh"}),
    "rnn_tanh": (Elman, {"activation": "tanh"}),
    "rnn_relu": (Elman, {"activation": "relu"}),
    # Le et al. 2015: ReLU, W_h = I, b = 0, input weights N(0, 0.001^2)
    "irnn": (Elman, {"activation": "relu", "recurrent_init": "identity",
                     "kernel_init": jax.nn.initializers.normal(0.001)}),
    "lstm": (LSTM, {}),
    "gru": (GRU, {"reset_after": True}),
    "gru_reset_before": (GRU, {"reset_after": False}),
    "min_gru": (MinGRU, {}),     # Feng et al. 2024; parallel scan (unroll impl="associative")
    "min_lstm": (MinLSTM, {}),
    "lru": (LRU, {}),            # Orvieto et al. 2023; complex diagonal, parallel scan
    "rg_lru": (RGLRU, {}),       # De et al. 2024 (Griffin); gated real diagonal, parallel scan
}

SIZE_FIELDS = ("input_size", "hidden_size")


def register_cell(name: str, cls: type[Cell], **fixed) -> None:
  """Adds a cell to the registry so that ``make_cell(name, ...)`` builds it."""
  CELLS[name] = (cls, fixed)


def _parse_value(spec: str, field: dataclasses.Field, text: str):
  default = field.default
  if field.name in ("recurrent_init",):
    if text not in RECURRENT_INITS:
      raise ValueError(f"cell {spec!r}: recurrent_init must be one of {sorted(RECURRENT_INITS)}, "
                       f"got {text!r}")
    return text
  if isinstance(default, bool):
    if text.lower() not in ("true", "false"):
      raise ValueError(f"cell {spec!r}: {field.name} must be true or false, got {text!r}")
    return text.lower() == "true"
  for kind in (int, float, str):
    if isinstance(default, kind):
      try:
        return kind(text)
      except ValueError:
        raise ValueError(f"cell {spec!r}: {field.name} must be {kind.__name__}, got {text!r}") \
            from None
  raise ValueError(f"cell {spec!r}: field {field.name} cannot be set from a string")


def parse_cell(spec: str) -> tuple[str, dict]:
  """``"name:field=value,..."`` -> (name, {field: value}); fails naming what is wrong."""
  name, _, options = spec.partition(":")
  if name not in CELLS:
    raise ValueError(f"cell: unknown cell {name!r}; valid cells are {sorted(CELLS)}")
  cls = CELLS[name][0]
  fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in SIZE_FIELDS}
  kwargs = {}
  for item in [o for o in options.split(",") if o]:
    key, eq, text = item.partition("=")
    if not eq:
      raise ValueError(f"cell {spec!r}: expected field=value, got {item!r}")
    if key not in fields:
      raise ValueError(f"cell {spec!r}: {cls.__name__} has no field {key!r}; fields are "
                       f"{sorted(fields)}")
    kwargs[key] = _parse_value(spec, fields[key], text)
  return name, kwargs


def make_cell(name: str, input_size: int, hidden_size: int, **kwargs) -> Cell:
  """Builds a cell from its spec (``name:field=value,...``); an unknown name lists the valid ones."""
  base, options = parse_cell(name)
  cls, fixed = CELLS[base]
  return cls(input_size=input_size, hidden_size=hidden_size, **{**fixed, **options, **kwargs})


__all__ = ["CELLS", "GRU", "LRU", "LSTM", "RGLRU", "Cell", "Elman", "LRUCarry", "LSTMCarry",
           "MinGRU", "MinLSTM", "make_cell", "parse_cell", "register_cell"]
