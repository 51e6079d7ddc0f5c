"""Weights from and to PyTorch, Flax (linen and NNX cells) and Keras 3.

Shape legend: D input size, H hidden size, G = n H (n gates). Ours: W_x [D, G],
W_h [H, G], b [G] (+ b_hn [H] for the GRU), gate blocks in the order i, f, g, o
(LSTM) and r, z, n (GRU); see ``recurrent/cells``. Every converter works on
NumPy arrays (anything ``np.asarray`` takes) and checks every key and shape
before converting, naming the key and the shape it expected.

PyTorch (``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` state dicts, as {name: array};
``{k: v.numpy() for k, v in module.state_dict().items()}``), one whole
``Stack`` at a time. Layer l, direction suffix "" or "_reverse":

    weight_ih_l{l}[_reverse] [G, D_l] = W_x^T      weight_hh_l{l}[_reverse] [G, H] = W_h^T
    bias_ih_l{l} + bias_hh_l{l} = b                (Elman, LSTM: only the sum matters)
    GRU: b = bias_ih + [bias_hh_r, bias_hh_z, 0],  b_hn = bias_hh_n (inside r * (...))

On export the summed bias goes to ``bias_ih`` and ``bias_hh`` holds zeros (GRU:
[0, 0, b_hn]); PyTorch -> ours -> PyTorch therefore returns the same weights
and the same *sums* of biases, and ours -> PyTorch -> ours is exact. PyTorch has
no peepholes, no reset-before GRU, no residual stacks and always concatenates
directions; these fail on export (and import) naming the field.

Flax linen cells (the ``params`` dict of one cell; with ``nn.RNN`` it is
``variables["params"]["cell"]``). Kernels are (in, out) like ours.

    LSTMCell, OptimizedLSTMCell: ii, if, ig, io {kernel [D, H]}; hi, hf, hg, ho {kernel [H, H], bias [H]}
    GRUCell: ir, iz, in {kernel [D, H], bias [H]}; hr, hz {kernel [H, H]}; hn {kernel, bias}
    SimpleCell: i {kernel [D, H], bias [H]}; h {kernel [H, H]}

Flax NNX cells (``nnx.LSTMCell`` etc., converted in place through their
``nnx.Param``s): LSTMCell as linen with ``if_`` for ``if``; OptimizedLSTMCell
dense_i {kernel [D, 4H]}, dense_h {kernel [H, 4H], bias [4H]}; GRUCell
dense_i {kernel [D, 3H], bias [3H]}, dense_h {kernel [H, 3H]} (no recurrent
bias, so b_hn must be 0); SimpleCell dense_i {kernel, bias}, dense_h {kernel}.
Flax carries an LSTM state as (c, h); ours is LSTMCarry(h, c).

Keras 3 ``LSTM`` / ``GRU`` layers (``layer.get_weights()`` order: kernel,
recurrent_kernel, bias). LSTM gate order i, f, c, o (= ours). GRU gate order
z, r, h; ``reset_after=True``: bias [2, 3H] = (input bias, recurrent bias)
and our GRU(reset_after=True); ``reset_after=False``: bias [3H] and our
GRU(reset_after=False), where b_hn is folded into the candidate bias on
export (the same function: in that form b_hn and b_n add up).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np

from recurrent.cells import GRU, LSTM, Cell, Elman
from recurrent.layers import Stack

Flat = dict[str, np.ndarray]


# ----------------------------------------------------------------------------- shared checks

def _check(name: str, flat: Mapping[str, Any], spec: Mapping[str, tuple]) -> Flat:
  """Every key of ``spec`` present with its shape and nothing else, as NumPy arrays."""
  for key, shape in spec.items():
    if key not in flat:
      raise ValueError(f"{name}: missing key {key!r} (expected shape {shape})")
  for key in flat:
    if key not in spec:
      raise ValueError(f"{name}: unexpected key {key!r}; expected the keys {sorted(spec)}")
  out = {}
  for key, shape in spec.items():
    a = np.asarray(flat[key])
    if a.shape != tuple(shape):
      raise ValueError(f"{name}[{key!r}]: expected shape {tuple(shape)}, got {a.shape}")
    out[key] = a
  return out


def _our_spec(cell: Cell) -> dict[str, tuple]:
  D, H, G = cell.input_size, cell.hidden_size, cell.gate_size
  spec = {"W_x": (D, G), "W_h": (H, G), "b": (G,)}
  if isinstance(cell, GRU):
    spec["b_hn"] = (H,)
  if isinstance(cell, LSTM) and cell.peephole:
    spec.update({"p_i": (H,), "p_f": (H,), "p_o": (H,)})
  return spec


def _ours(cell: Cell, params: Mapping) -> Flat:
  return _check("params", params, _our_spec(cell))


def _cast(cell: Cell, params: Flat) -> dict:
  return {k: np.asarray(v, cell.param_dtype) for k, v in params.items()}


def _kind(cell: Cell) -> str:
  if isinstance(cell, Elman):
    return "rnn"
  if isinstance(cell, LSTM):
    return "lstm"
  if isinstance(cell, GRU):
    return "gru"
  raise ValueError(f"cell: no converter for {type(cell).__name__}; supported: Elman, LSTM, GRU")


def _blocks(a: np.ndarray, n: int) -> list[np.ndarray]:
  return np.split(a, n, axis=-1)


def _flatten(tree: Mapping, prefix: str = "") -> Flat:
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(_flatten(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _unflatten(flat: Flat) -> dict:
  out: dict = {}
  for key, v in flat.items():
    *path, leaf = key.split("/")
    d = out
    for p in path:
      d = d.setdefault(p, {})
    d[leaf] = v
  return out


def _check_form(cell: Cell, target: str) -> None:
  """Fails for cells the target library cannot represent, naming the field."""
  if isinstance(cell, LSTM) and cell.peephole:
    raise ValueError(f"cell: {target} has no peephole LSTM; got LSTM(peephole=True)")
  _kind(cell)


# ----------------------------------------------------------------------------- PyTorch

def _torch_layers(stack: Stack) -> None:
  if not isinstance(stack, Stack):
    raise ValueError(f"stack: expected a recurrent.layers.Stack (e.g. make_stack(cell, ...) for one "
                     f"cell), got {type(stack).__name__}")
  if stack.residual:
    raise ValueError("stack.residual: PyTorch's nn.RNN/LSTM/GRU have no residual connections; got True")
  first = stack.layers[0]
  for i, layer in enumerate(stack.layers):
    cell = layer.cell
    _check_form(cell, "PyTorch")
    if isinstance(cell, GRU) and not cell.reset_after:
      raise ValueError(f"stack.layers[{i}].cell: PyTorch's nn.GRU applies the reset after the recurrent "
                       "matmul (reset_after=True); got a reset-before GRU (reset_after=False)")
    if type(cell) is not type(first.cell) or cell.hidden_size != first.cell.hidden_size or \
        layer.is_bidirectional != first.is_bidirectional or \
        getattr(cell, "activation", None) != getattr(first.cell, "activation", None):
      raise ValueError(f"stack.layers[{i}]: PyTorch needs one cell type, hidden size and direction "
                       f"for all layers; got {layer} after {first}")
    if layer.is_bidirectional and layer.merge != "concat":
      raise ValueError(f"stack.layers[{i}].merge: PyTorch concatenates directions; got {layer.merge!r}")


def _torch_spec(stack: Stack) -> dict[str, tuple]:
  spec = {}
  for l, layer in enumerate(stack.layers):
    cell = layer.cell
    G, H, D = cell.gate_size, cell.hidden_size, cell.input_size
    for sfx in ("", "_reverse") if layer.is_bidirectional else ("",):
      spec.update({f"weight_ih_l{l}{sfx}": (G, D), f"weight_hh_l{l}{sfx}": (G, H),
                   f"bias_ih_l{l}{sfx}": (G,), f"bias_hh_l{l}{sfx}": (G,)})
  return spec


def _directions(layer) -> list[tuple[str, Any]]:
  return [("", "fw"), ("_reverse", "bw")] if layer.is_bidirectional else [("", None)]


def from_torch(stack: Stack, state_dict: Mapping[str, Any]) -> list:
  """A PyTorch nn.RNN/LSTM/GRU state dict -> ``stack``'s parameters (``Stack.init`` layout)."""
  _torch_layers(stack)
  sd = _check("state_dict", state_dict, _torch_spec(stack))
  params = []
  for l, layer in enumerate(stack.layers):
    cell = layer.cell
    H = cell.hidden_size
    out = {}
    for sfx, name in _directions(layer):
      w_ih, w_hh = sd[f"weight_ih_l{l}{sfx}"], sd[f"weight_hh_l{l}{sfx}"]
      b_ih, b_hh = sd[f"bias_ih_l{l}{sfx}"], sd[f"bias_hh_l{l}{sfx}"]
      p = {"W_x": w_ih.T, "W_h": w_hh.T}
      if isinstance(cell, GRU):
        p["b"] = b_ih + np.concatenate([b_hh[:2 * H], np.zeros_like(b_hh[2 * H:])])
        p["b_hn"] = b_hh[2 * H:]
      else:
        p["b"] = b_ih + b_hh
      out[name] = _cast(cell, p)
    params.append(out if layer.is_bidirectional else out[None])
  return params


def to_torch(stack: Stack, params) -> Flat:
  """``stack``'s parameters -> a PyTorch state dict {name: NumPy array} (summed bias in bias_ih)."""
  _torch_layers(stack)
  if not isinstance(params, (list, tuple)) or len(params) != len(stack.layers):
    raise ValueError(f"params: expected a list of {len(stack.layers)} layers' parameters")
  sd = {}
  for l, (layer, lp) in enumerate(zip(stack.layers, params)):
    cell = layer.cell
    H = cell.hidden_size
    if layer.is_bidirectional and not (isinstance(lp, Mapping) and set(lp) == {"fw", "bw"}):
      raise ValueError(f"params[{l}]: a bidirectional layer's parameters are {{'fw': ..., 'bw': ...}}, "
                       f"got keys {sorted(lp) if isinstance(lp, Mapping) else type(lp).__name__}")
    for sfx, name in _directions(layer):
      p = _ours(cell, lp if name is None else lp[name])
      sd[f"weight_ih_l{l}{sfx}"] = np.ascontiguousarray(p["W_x"].T)
      sd[f"weight_hh_l{l}{sfx}"] = np.ascontiguousarray(p["W_h"].T)
      sd[f"bias_ih_l{l}{sfx}"] = p["b"].copy()
      b_hh = np.zeros_like(p["b"])
      if isinstance(cell, GRU):
        b_hh[2 * H:] = p["b_hn"]
      sd[f"bias_hh_l{l}{sfx}"] = b_hh
  return sd


# ----------------------------------------------------------------------------- Flax (linen and NNX)

FLAX_CELLS = ("LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell")
_LSTM_GATES = ("i", "f", "g", "o")
_GRU_GATES = ("r", "z", "n")


def _flax_kind(cell: Cell, kind: str) -> None:
  want = {"LSTMCell": LSTM, "OptimizedLSTMCell": LSTM, "GRUCell": GRU, "SimpleCell": Elman}
  if kind not in want:
    raise ValueError(f"kind: must be one of {FLAX_CELLS}, got {kind!r}")
  if not isinstance(cell, want[kind]):
    raise ValueError(f"cell: a Flax {kind} maps to our {want[kind].__name__}, got {type(cell).__name__}")
  _check_form(cell, f"Flax {kind}")
  if isinstance(cell, GRU) and not cell.reset_after:
    raise ValueError("cell: Flax's GRUCell applies the reset after the recurrent matmul "
                     "(reset_after=True); got reset_after=False")
  if isinstance(cell, Elman) and cell.activation != "tanh":
    raise ValueError(f"cell.activation: Flax's SimpleCell defaults to tanh; got {cell.activation!r}")


def _flax_spec(cell: Cell, kind: str, nnx: bool) -> dict[str, tuple]:
  D, H = cell.input_size, cell.hidden_size
  if kind == "LSTMCell" or (kind == "OptimizedLSTMCell" and not nnx):
    spec = {}
    for g in _LSTM_GATES:
      spec[f"i{g}_/kernel" if (nnx and g == "f") else f"i{g}/kernel"] = (D, H)
      spec[f"h{g}/kernel"], spec[f"h{g}/bias"] = (H, H), (H,)
    return spec
  if kind == "OptimizedLSTMCell":
    return {"dense_i/kernel": (D, 4 * H), "dense_h/kernel": (H, 4 * H), "dense_h/bias": (4 * H,)}
  if kind == "GRUCell" and not nnx:
    spec = {}
    for g in _GRU_GATES:
      spec[f"i{g}/kernel"], spec[f"i{g}/bias"], spec[f"h{g}/kernel"] = (D, H), (H,), (H, H)
    spec["hn/bias"] = (H,)
    return spec
  if kind == "GRUCell":
    return {"dense_i/kernel": (D, 3 * H), "dense_i/bias": (3 * H,), "dense_h/kernel": (H, 3 * H)}
  names = ("dense_i", "dense_h") if nnx else ("i", "h")
  return {f"{names[0]}/kernel": (D, H), f"{names[0]}/bias": (H,), f"{names[1]}/kernel": (H, H)}


def _from_flax_flat(cell: Cell, flat: Flat, kind: str, nnx: bool) -> dict:
  f = _check(f"Flax {kind} params", flat, _flax_spec(cell, kind, nnx))
  H = cell.hidden_size
  if kind == "LSTMCell" or (kind == "OptimizedLSTMCell" and not nnx):
    ik = lambda g: f[f"i{g}_/kernel" if (nnx and g == "f") else f"i{g}/kernel"]
    p = {"W_x": np.concatenate([ik(g) for g in _LSTM_GATES], -1),
         "W_h": np.concatenate([f[f"h{g}/kernel"] for g in _LSTM_GATES], -1),
         "b": np.concatenate([f[f"h{g}/bias"] for g in _LSTM_GATES], -1)}
  elif kind == "OptimizedLSTMCell":
    p = {"W_x": f["dense_i/kernel"], "W_h": f["dense_h/kernel"], "b": f["dense_h/bias"]}
  elif kind == "GRUCell" and not nnx:
    p = {"W_x": np.concatenate([f[f"i{g}/kernel"] for g in _GRU_GATES], -1),
         "W_h": np.concatenate([f[f"h{g}/kernel"] for g in _GRU_GATES], -1),
         "b": np.concatenate([f[f"i{g}/bias"] for g in _GRU_GATES], -1), "b_hn": f["hn/bias"]}
  elif kind == "GRUCell":
    p = {"W_x": f["dense_i/kernel"], "W_h": f["dense_h/kernel"], "b": f["dense_i/bias"],
         "b_hn": np.zeros((H,), f["dense_i/bias"].dtype)}
  else:
    i, h = ("dense_i", "dense_h") if nnx else ("i", "h")
    p = {"W_x": f[f"{i}/kernel"], "W_h": f[f"{h}/kernel"], "b": f[f"{i}/bias"]}
  return _cast(cell, p)


def _to_flax_flat(cell: Cell, params, kind: str, nnx: bool) -> Flat:
  p = _ours(cell, params)
  f: Flat = {}
  if kind == "LSTMCell" or (kind == "OptimizedLSTMCell" and not nnx):
    for g, wx, wh, b in zip(_LSTM_GATES, _blocks(p["W_x"], 4), _blocks(p["W_h"], 4), _blocks(p["b"], 4)):
      f[f"i{g}_/kernel" if (nnx and g == "f") else f"i{g}/kernel"] = wx
      f[f"h{g}/kernel"], f[f"h{g}/bias"] = wh, b
  elif kind == "OptimizedLSTMCell":
    f = {"dense_i/kernel": p["W_x"], "dense_h/kernel": p["W_h"], "dense_h/bias": p["b"]}
  elif kind == "GRUCell" and not nnx:
    for g, wx, wh, b in zip(_GRU_GATES, _blocks(p["W_x"], 3), _blocks(p["W_h"], 3), _blocks(p["b"], 3)):
      f[f"i{g}/kernel"], f[f"i{g}/bias"], f[f"h{g}/kernel"] = wx, b, wh
    f["hn/bias"] = p["b_hn"]
  elif kind == "GRUCell":
    if np.any(p["b_hn"] != 0):
      raise ValueError("params['b_hn']: Flax NNX's GRUCell has no recurrent candidate bias; expected "
                       f"zeros of shape {p['b_hn'].shape}, got nonzero values")
    f = {"dense_i/kernel": p["W_x"], "dense_i/bias": p["b"], "dense_h/kernel": p["W_h"]}
  else:
    i, h = ("dense_i", "dense_h") if nnx else ("i", "h")
    f = {f"{i}/kernel": p["W_x"], f"{i}/bias": p["b"], f"{h}/kernel": p["W_h"]}
  return {k: np.array(v) for k, v in f.items()}


def from_flax(cell: Cell, params: Mapping, kind: str) -> dict:
  """A Flax linen ``kind`` cell's params dict -> our ``cell``'s parameters."""
  _flax_kind(cell, kind)
  return _from_flax_flat(cell, _flatten(params), kind, nnx=False)


def to_flax(cell: Cell, params, kind: str) -> dict:
  """Our ``cell``'s parameters -> the params dict of a Flax linen ``kind`` cell."""
  _flax_kind(cell, kind)
  return _unflatten(_to_flax_flat(cell, params, kind, nnx=False))


def _nnx_module(cell: Cell, module):
  from flax import nnx  # noqa: PLC0415 (Flax is a dependency; imported here to keep this module light)
  kind = type(module).__name__
  if not isinstance(module, nnx.Module) or kind not in FLAX_CELLS:
    raise ValueError(f"module: expected a Flax NNX cell ({', '.join(FLAX_CELLS)}), got {kind}")
  _flax_kind(cell, kind)
  if getattr(module, "residual", False):
    raise ValueError("module.residual: our Elman cell has no residual connection; got True")
  if getattr(module, "gate_fn", jax.nn.sigmoid) is not jax.nn.sigmoid or \
      module.activation_fn is not jax.numpy.tanh:
    raise ValueError("module: expected gate_fn=sigmoid and activation_fn=tanh (Flax's defaults)")
  return nnx, kind


def from_nnx(cell: Cell, module) -> dict:
  """A Flax NNX cell (nnx.LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell) -> our ``cell``'s parameters."""
  nnx, kind = _nnx_module(cell, module)
  flat = _flatten(nnx.to_pure_dict(nnx.state(module, nnx.Param)))
  return _from_flax_flat(cell, flat, kind, nnx=True)


def to_nnx(cell: Cell, params, module):
  """Writes our ``cell``'s parameters into a Flax NNX cell of matching sizes, in place; returns it."""
  nnx, kind = _nnx_module(cell, module)
  flat = _to_flax_flat(cell, params, kind, nnx=True)
  state = nnx.state(module, nnx.Param)
  current = _flatten(nnx.to_pure_dict(state))
  _check(f"module ({kind}) parameters", flat, {k: np.shape(v) for k, v in current.items()})
  nnx.replace_by_pure_dict(state, _unflatten({k: np.asarray(v, current[k].dtype) for k, v in flat.items()}))
  nnx.update(module, state)
  return module


# ----------------------------------------------------------------------------- Keras 3

KERAS_WEIGHTS = ("kernel", "recurrent_kernel", "bias")
_KERAS_GRU = (1, 0, 2)  # our r, z, n blocks are Keras's blocks 1 (r), 0 (z), 2 (h)


def _keras_spec(cell: Cell) -> dict[str, tuple]:
  D, H, G = cell.input_size, cell.hidden_size, cell.gate_size
  bias = (2, G) if isinstance(cell, GRU) and cell.reset_after else (G,)
  return {"kernel": (D, G), "recurrent_kernel": (H, G), "bias": bias}


def _keras_weights(cell: Cell, layer_or_weights) -> Flat:
  """Checks a Keras LSTM/GRU layer's configuration against ``cell``; its weights by name."""
  if isinstance(layer_or_weights, (list, tuple)):
    weights = list(layer_or_weights)
  else:
    layer = layer_or_weights
    kind = type(layer).__name__
    want = {"LSTM": LSTM, "GRU": GRU}.get(kind)
    if want is None or not isinstance(cell, want):
      raise ValueError(f"layer: a Keras {kind} does not map to our {type(cell).__name__}")
    if isinstance(cell, GRU) and layer.reset_after != cell.reset_after:
      raise ValueError(f"layer.reset_after: expected {cell.reset_after} like the cell, got {layer.reset_after}")
    for field, want_name in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
      got = getattr(getattr(layer, field), "__name__", None)
      if got != want_name:
        raise ValueError(f"layer.{field}: expected {want_name!r}, got {got!r}")
    if not layer.use_bias:
      raise ValueError("layer.use_bias: expected True, got False")
    weights = layer.get_weights()
  if len(weights) != len(KERAS_WEIGHTS):
    raise ValueError(f"weights: expected {len(KERAS_WEIGHTS)} arrays {KERAS_WEIGHTS}, got {len(weights)}")
  return dict(zip(KERAS_WEIGHTS, weights))


def _keras_check_cell(cell: Cell) -> None:
  _check_form(cell, "Keras")
  if not isinstance(cell, (LSTM, GRU)):
    raise ValueError(f"cell: Keras converters cover LSTM and GRU, got {type(cell).__name__}")


def from_keras(cell: Cell, layer_or_weights) -> dict:
  """A built Keras 3 LSTM/GRU layer (or its ``get_weights()`` list) -> our ``cell``'s parameters."""
  _keras_check_cell(cell)
  w = _check("Keras weights", _keras_weights(cell, layer_or_weights), _keras_spec(cell))
  if isinstance(cell, LSTM):
    return _cast(cell, {"W_x": w["kernel"], "W_h": w["recurrent_kernel"], "b": w["bias"]})
  order = lambda a: np.concatenate([_blocks(a, 3)[k] for k in _KERAS_GRU], -1)
  H = cell.hidden_size
  p = {"W_x": order(w["kernel"]), "W_h": order(w["recurrent_kernel"])}
  if cell.reset_after:
    b_in, b_rec = order(w["bias"][0]), order(w["bias"][1])
    p["b"] = b_in + np.concatenate([b_rec[:2 * H], np.zeros_like(b_rec[2 * H:])])
    p["b_hn"] = b_rec[2 * H:]
  else:
    p["b"] = order(w["bias"])
    p["b_hn"] = np.zeros((H,), p["b"].dtype)
  return _cast(cell, p)


def to_keras(cell: Cell, params, layer=None) -> list[np.ndarray]:
  """Our ``cell``'s parameters -> [kernel, recurrent_kernel, bias]; set on ``layer`` (built) if given."""
  _keras_check_cell(cell)
  p = _ours(cell, params)
  if isinstance(cell, LSTM):
    weights = [p["W_x"], p["W_h"], p["b"]]
  else:
    H = cell.hidden_size
    inv = lambda a: np.concatenate([_blocks(a, 3)[k] for k in (1, 0, 2)], -1)  # r, z, n -> z, r, h
    if cell.reset_after:
      bias = np.stack([inv(p["b"]), inv(np.concatenate([np.zeros_like(p["b"][:2 * H]), p["b_hn"]]))])
    else:
      bias = inv(p["b"] + np.concatenate([np.zeros_like(p["b"][:2 * H]), p["b_hn"]]))
    weights = [inv(p["W_x"]), inv(p["W_h"]), bias]
  weights = [np.array(w) for w in weights]
  if layer is not None:
    _check("layer weights", dict(zip(KERAS_WEIGHTS, layer.get_weights())), _keras_spec(cell))
    _keras_weights(cell, layer)
    layer.set_weights(weights)
  return weights


__all__ = ["FLAX_CELLS", "from_flax", "from_keras", "from_nnx", "from_torch", "to_flax",
           "to_keras", "to_nnx", "to_torch"]
