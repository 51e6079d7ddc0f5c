"""A few optimiser steps of a task, straight through its loss_fn and optax (no trainer), for smoke tests."""

import jax
import numpy as np
import optax

from recurrent.training.optim import make_optimizer


def train_steps(task, config, num_steps: int, tx=None, deterministic: bool = False):
  """Runs ``num_steps`` steps of ``task`` -> (params, [loss per step]).

  The optimiser is the config's unless ``tx`` is given; ``deterministic`` passes rng=None
  to the loss (no dropout), as evaluation does.
  """
  params = task.init_params(jax.random.key(config.seed))
  tx = make_optimizer(config.optim, config.num_steps) if tx is None else tx
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, batch, rng):
    rng = None if deterministic else rng
    (loss, metrics), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(params, batch, rng)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  losses = []
  for s in range(num_steps):
    params, opt_state, loss = step(params, opt_state, task.train_batch(s), jax.random.key(s))
    losses.append(float(loss))
  assert np.all(np.isfinite(losses)), losses
  return params, losses


def sine_smoke(**overrides):
  """configs/sine.py:smoke with dotted overrides (``sine_smoke(**{"optim.learning_rate": 0.1})``)."""
  from configs import sine
  config = sine.get_config("smoke")
  for k, v in overrides.items():
    node = config
    *parents, leaf = k.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = v
  return config
