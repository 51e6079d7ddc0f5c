"""The train state and the pure, jitted train and eval steps.

    state = init_state(task, tx, seed)
    train_step = make_train_step(task, tx, config.optim)   # (state, batch) -> (state, metrics)
    quiet_step = make_train_step(task, tx, config.optim, logged=False)  # metrics = {"loss"} only
    eval_step = make_eval_step(task)                       # (params, batch) -> {name: (total, count)}

The step's randomness is ``fold_in(key(seed), step)``, so it depends on the
step alone and a resumed run draws the same keys. A step whose loss or
gradient is NaN or Inf leaves params and optimiser state unchanged and records
its index in ``state.nonfinite_step`` (-1 while every step was finite); the
loop checks it whenever metrics leave the device and stops naming that step.

Logged norms (Pascanu et al. 2013 for clipping): ``grad_norm`` is the global
L2 norm of the raw gradient, ``grad_norm_clipped`` after the config's value
and global-norm clipping, ``update_norm`` of the optimiser's update and
``param_norm`` of the new parameters. They cost little beside the update:
``grad_norm`` is the same expression as the one ``optax.clip_by_global_norm``
computes inside the optimiser (XLA computes it once), and the clipped norm is
derived from it, ``min(||g||, c)``, instead of being a norm of a clipped copy
of the gradient (with value clipping: one norm of the value-clipped gradient,
then the same minimum).

They are needed only on the steps whose metrics are logged, and some are not
cheap: the LM's train accuracy reads all [B T, V] logits twice more
(``argmax_hits``: about 8 ms of the logged PTB step on one core, 23 ms as
``jnp.argmax`` before session 6) and ``update_norm`` / ``param_norm``
each read the whole model. So ``make_train_step(..., logged=False)`` gives
the step that returns only ``{"loss": loss}``: the task's metrics and the
norms are the same expressions, no longer outputs, and XLA removes them as
dead code. Both variants compute the same new state bitwise (tested); the
loop runs the ``logged`` one on logging steps only (a second compile when some steps do not log).

A stateful task (``task.initial_carry`` set; see ``recurrent.tasks.base``)
keeps its recurrent carry in ``state.carry``: each step starts from it and
stores the carry after its window, with the gradient stopped there, so the
gradient of a step is that of a truncated unroll from the carried state.
Stateless tasks have ``carry = ()``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from recurrent.tasks.base import Task
from recurrent.tasks.base import eval_step as base_eval_step


class TrainState(NamedTuple):
  step: jax.Array            # int32 scalar: the number of steps taken
  params: Any
  opt_state: Any
  rng: jax.Array             # uint32 key data of key(seed); per-step keys are fold_in(rng, step)
  nonfinite_step: jax.Array  # int32 scalar: first step with a NaN/Inf loss or gradient, -1 if none
  carry: Any = ()            # a stateful task's carry after the last window ([B, ...] leaves); () if none


def init_state(task: Task, tx: optax.GradientTransformation, seed: int,
               batch_size: int = 0) -> TrainState:
  """The state at step 0: params from a key folded out of key(seed), a fresh optimiser state.

  A stateful task's carry starts at ``task.initial_carry(batch_size)``.
  Built under one jit: one compile instead of one per initialiser op.
  """
  @jax.jit
  def init(key_data):
    key = jax.random.wrap_key_data(key_data)
    params = task.init_params(jax.random.fold_in(key, 0x1417))
    carry = () if task.initial_carry is None else task.initial_carry(batch_size)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      rng=key_data, nonfinite_step=jnp.full((), -1, jnp.int32), carry=carry)
  return init(jax.random.key_data(jax.random.key(seed)))


def clipped_norm(grads, grad_norm: jax.Array, optim) -> jax.Array:
  """||g|| after the config's clipping, as the optimiser chain clips it, from ``grad_norm`` = ||g||.

  Global-norm clipping scales g by c / ||g|| when ||g|| >= c, so the clipped
  norm is min(||g||, c) (Pascanu et al. 2013); value clipping is
  elementwise, so its norm is one reduction over the value-clipped gradient.
  """
  norm = grad_norm
  if optim.clip_value > 0:
    v = optim.clip_value
    norm = optax.tree.norm(jax.tree.map(lambda g: jnp.clip(g, -v, v), grads))
  if optim.clip_norm > 0:  # a non-finite gradient has no clipped norm (optax's copy is NaN too)
    norm = jnp.where(jnp.isfinite(norm), jnp.minimum(norm, optim.clip_norm), jnp.nan)
  return norm


def means(metrics) -> dict:
  """{name: (total, count)} -> {name: total / count}."""
  return {k: jnp.asarray(t, jnp.float32) / jnp.asarray(c, jnp.float32) for k, (t, c) in metrics.items()}


def make_train_step(task: Task, tx: optax.GradientTransformation, optim, logged: bool = True):
  """A pure ``train_step(state, batch) -> (state, metrics)``; jit it with the state donated.

  ``logged=False``: metrics are ``{"loss": loss}`` alone, the rest left to
  dead-code elimination; the new state is the same.
  """

  def train_step(state: TrainState, batch):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    if task.initial_carry is None:
      (loss, task_metrics), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(
          state.params, batch, rng)
      carry = state.carry
    else:  # truncated BPTT: differentiate this window only, from the carried state
      (loss, (task_metrics, carry)), grads = jax.value_and_grad(
          lambda p: task.loss_fn(p, batch, rng, state.carry), has_aux=True)(state.params)
      carry = jax.lax.stop_gradient(carry)
    grad_norm = optax.tree.norm(grads)  # the expression clip_by_global_norm computes: XLA shares it
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
    params, opt_state = keep(params, state.params), keep(opt_state, state.opt_state)
    carry = keep(carry, state.carry)
    nonfinite_step = jnp.where((state.nonfinite_step < 0) & ~ok, state.step, state.nonfinite_step)
    new_state = TrainState(state.step + 1, params, opt_state, state.rng, nonfinite_step, carry)
    if not logged:
      return new_state, {"loss": loss}
    metrics = {
        **means(task_metrics),
        "loss": loss,
        "grad_norm": grad_norm,
        "grad_norm_clipped": clipped_norm(grads, grad_norm, optim),
        "update_norm": optax.tree.norm(updates),
        "param_norm": optax.tree.norm(params),
    }
    return new_state, metrics

  return train_step


def make_eval_step(task: Task):
  """A pure ``eval_step(params, batch) -> {name: (total, count)}`` (deterministic: rng=None).

  For a stateful task: ``eval_step(params, batch, carry) -> (metrics, carry)``
  (``recurrent.tasks.base.eval_step``, what the one ``Evaluator`` runs).
  """
  return base_eval_step(task.loss_fn, task.initial_carry is not None)