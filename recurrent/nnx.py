"""Flax NNX modules: the parameters live in ``nnx.Param``s, the recurrence stays the pure functions.

Shape legend: B batch, T time, D input size, H hidden size.

    cell = Cell("lstm", 3, 8, rngs=nnx.Rngs(0))
    carry = cell.initial_carry((B,))
    carry, y_BH = cell(carry, x_BD)                       # one step (cell.step of the pure cell)
    carry, y_BTH = cell.unroll(x_BTD, lengths_B)          # layers.unroll

    rnn = RNN(3, (8, 8), "gru", bidirectional=True, dropout=0.1, rngs=nnx.Rngs(0))
    carries, y_BTH = rnn(x_BTD, lengths_B)                # Stack.apply; dropout on in training
    rnn.eval()                                             # deterministic (rnn.train() turns it back on)

The parameters of a module are the pytree that the pure ``cell.init`` /
``Stack.init`` return, with every array wrapped in an ``nnx.Param`` (same
nesting, same names). So one set of weights moves between the three forms:

    pure = rnn.pure_params()                        # -> Stack.apply(pure, ...)
    linen_vars = {"params": {"stack": pure}}        # -> recurrent.nn.RNN(...).apply(linen_vars, ...)
    rnn.load_params(pure)                           # <- from either (shapes are checked)

Nothing is computed here: ``__call__`` hands the parameters to
``Stack.apply`` / ``layers.unroll``. Dropout (between layers, as in
``Stack``) follows ``nnx.Dropout``: a ``deterministic`` attribute that
``model.train()`` / ``model.eval()`` set, and an rng stream ("dropout")
forked at construction or an ``rngs`` given at call time.

``intercept`` lets a caller run the stack differently while keeping the
module's parameters (``recurrent.diagnostics`` runs its perturbed scan
through it, as it does with ``flax.linen.intercept_methods`` for linen).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from recurrent import layers
from recurrent.cells import make_cell
from recurrent.cells.base import check_like
from recurrent.checks import check_int

Array = jax.Array

_INTERCEPT: contextvars.ContextVar = contextvars.ContextVar("recurrent_nnx_intercept", default=None)


def _is_param(v) -> bool:
  return isinstance(v, nnx.Variable)


def wrap(params) -> Any:
  """A pure parameter pytree -> the same pytree with every array in an ``nnx.Param``."""
  return nnx.data(jax.tree.map(nnx.Param, params))


def unwrap(params) -> Any:
  """The inverse of ``wrap``: the arrays held by the ``nnx.Param``s, in the same pytree."""
  return jax.tree.map(lambda v: v.get_value(), params, is_leaf=_is_param)


class _Params(nnx.Module):
  """What both modules share: the wrapped pure pytree (``self.params``) and the ways in and out."""

  def pure_params(self):
    """The pure parameter pytree (``cell.init`` / ``Stack.init`` layout)."""
    return unwrap(self.params)

  def load_params(self, params) -> None:
    """Sets the parameters from a pure pytree of the same structure and shapes (cast to the current dtypes)."""
    current = self.pure_params()
    check_like("params", params, current)
    flat = jax.tree.leaves(params)
    for v, new, old in zip(jax.tree.leaves(self.params, is_leaf=_is_param), flat,
                           jax.tree.leaves(current)):
      v.set_value(jnp.asarray(new, old.dtype))


class Cell(_Params):
  """One recurrent cell (a name from ``recurrent.cells.CELLS``) as an NNX module.

  ``__call__(carry, x_BD) -> (carry, y_BH)`` is one step from the raw input,
  like ``nnx.LSTMCell``; ``unroll`` runs a whole batch of sequences.
  """

  def __init__(self, cell: str, input_size: int, hidden_size: int, *, rngs: nnx.Rngs,
               **cell_kwargs):
    self.cell = make_cell(cell, input_size, hidden_size, **cell_kwargs)
    self.params = wrap(self.cell.init(rngs.params()))

  def initial_carry(self, batch_shape: tuple[int, ...] = ()):
    return self.cell.initial_carry(batch_shape)

  def __call__(self, carry, x):
    if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != self.cell.input_size:
      raise ValueError(f"x: expected shape [..., D={self.cell.input_size}], got {tuple(jnp.shape(x))}")
    layers.check_carry(self.cell, carry, jnp.shape(x)[:-1], "carry")
    return self.cell(self.pure_params(), carry, x)

  def unroll(self, xs: Array, lengths: Array | None = None, initial_carry=None,
             reverse: bool = False, *, impl: str = "auto", remat: int = 0):
    """(final carry, ys [B, T, H]): ``recurrent.layers.unroll`` with these parameters."""
    return layers.unroll(self.cell, self.pure_params(), xs, lengths, initial_carry, reverse,
                         impl=impl, remat=remat)


class RNN(_Params):
  """A stack of recurrent layers (``recurrent.layers.Stack``) as an NNX module.

  Args mirror ``recurrent.nn.RNN`` (linen), with the input size given up
  front as NNX modules are built eagerly: ``cell``, ``hidden_sizes``,
  ``bidirectional``, ``merge``, ``dropout`` (between layers), ``residual``,
  ``highway``, ``unroll``, ``impl``, ``remat`` and ``cell_kwargs`` (forget_bias,
  param_dtype, ...). ``deterministic`` (default False, like
  ``nnx.Dropout``) switches dropout off; ``rngs`` needs a "params" stream,
  and a "dropout" stream (or a default one) when ``dropout > 0``.
  """

  def __init__(self, input_size: int, hidden_sizes: int | Sequence[int], cell: str = "lstm", *,
               bidirectional: bool = False, merge: str = "concat", dropout: float = 0.0,
               residual: bool = False, highway: bool = False, unroll: int = 1,
               impl: str = "auto", remat: int = 0,
               cell_kwargs: dict | None = None, deterministic: bool = False, rngs: nnx.Rngs):
    if isinstance(hidden_sizes, int):
      hidden_sizes = (hidden_sizes,)
    self.stack = layers.make_stack(cell, input_size, tuple(hidden_sizes), bidirectional, merge,
                                   dropout, residual, highway, **(cell_kwargs or {}))
    self.unroll, self.impl, self.remat = unroll, impl, remat
    self.deterministic = deterministic
    self.params = wrap(self.stack.init(rngs.params()))
    self.rngs = rngs["dropout"].fork() if dropout > 0.0 else nnx.data(None)

  @property
  def output_size(self) -> int:
    return self.stack.output_size

  def initial_carries(self, batch_size: int) -> list:
    check_int("batch_size", batch_size)
    return [layer.cell.initial_carry((batch_size,)) if not layer.is_bidirectional else
            (layer.cell.initial_carry((batch_size,)),) * 2 for layer in self.stack.layers]

  def __call__(self, xs: Array, lengths: Array | None = None, initial_carries=None, *,
               deterministic: bool | None = None, rngs: nnx.Rngs | None = None):
    """(final carries, one per layer, ys [B, T, out]); see ``recurrent.layers.Stack.apply``."""
    hook = _INTERCEPT.get()
    if hook is not None:
      return hook(self, xs, lengths, initial_carries)
    deterministic = self.deterministic if deterministic is None else deterministic
    rng = None
    if not deterministic and self.stack.dropout > 0.0:
      stream = rngs["dropout"] if rngs is not None else self.rngs
      if stream is None:
        raise ValueError("rngs: dropout > 0 in training needs a 'dropout' rng stream, got none")
      rng = stream()
    return self.stack.apply(self.pure_params(), xs, lengths, initial_carries, rng, self.unroll,
                            impl=self.impl, remat=self.remat)


@contextlib.contextmanager
def intercept(fn: Callable[[RNN, Array, Array | None, Any], Any]):
  """Within the block, every ``RNN.__call__`` returns ``fn(module, xs, lengths, initial_carries)``."""
  token = _INTERCEPT.set(fn)
  try:
    yield
  finally:
    _INTERCEPT.reset(token)


__all__ = ["Cell", "RNN", "check_like", "intercept", "unwrap", "wrap"]
