"""The sections every training config shares; experiment configs start from ``base_config()``.

    from configs import base

    def get_config(arg=None):
      config = base.base_config()
      config.task.name = "adding"          # recurrent/tasks/adding.py
      config.task.seq_len = 100            # task fields are the task's own
      config.model.cell = "lstm"
      ...
      return base.finalize(config, arg)    # applies :smoke and other variants, locks

Every field is set here, explicitly, with a comment; nothing has a hidden
default in the trainer. ``finalize`` locks the ConfigDict so that a misspelled
``--config.FIELD=...`` override fails.
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0                      # the one seed: init, data order, dropout

  config.task = ml_collections.ConfigDict()
  config.task.name = ""                # a module in recurrent/tasks/

  config.model = ml_collections.ConfigDict()
  config.model.cell = "lstm"           # a name in recurrent.cells.CELLS
  config.model.hidden_sizes = (128,)   # one hidden size per layer
  config.model.bidirectional = False   # both directions, separate weights
  config.model.merge = "concat"        # concat | sum, joining the directions
  config.model.dropout = 0.0           # between layers
  config.model.residual = False        # add a layer's input to its output where sizes match

  config.optim = ml_collections.ConfigDict()
  config.optim.name = "adam"           # adam | adamw | sgd | rmsprop | adagrad
  config.optim.learning_rate = 1e-3
  config.optim.schedule = "constant"   # constant | cosine | warmup_cosine
  config.optim.warmup_steps = 0
  config.optim.momentum = 0.0          # sgd only
  config.optim.weight_decay = 0.0      # decoupled, when > 0
  config.optim.clip_norm = 0.0         # clip by global norm, when > 0
  config.optim.clip_value = 0.0        # clip each entry to [-v, v], when > 0

  config.batch_size = 32
  config.num_steps = 1000              # the step budget (the one field a resume may change)
  config.log_every = 50                # steps between log lines / metric writes
  config.eval_every = 200              # steps between evaluations on the held-out split
  config.checkpoint_every = 200        # steps between checkpoints (and one at the end)
  config.keep_checkpoints = 3          # the last K are kept, plus the best by the eval metric
  config.eval_batches = 0              # evaluate on at most this many held-out batches; 0 = all
  config.num_devices = 0               # devices on the mesh axis 'data' (batch split, params replicated); 0 = all
  return config


def apply_smoke(config: ml_collections.ConfigDict) -> None:
  """Shrinks a config so that it trains a few steps in seconds (for tests)."""
  config.model.hidden_sizes = tuple(min(h, 16) for h in config.model.hidden_sizes)
  config.batch_size = min(config.batch_size, 8)
  config.num_steps = 6
  config.log_every = 2
  config.eval_every = 3
  config.checkpoint_every = 3
  config.eval_batches = min(config.eval_batches, 2) if config.eval_batches else 2


def finalize(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies the ``smoke`` variant when ``arg`` contains it, then locks the config."""
  variants = [a for a in (arg or "").split(",") if a]
  for v in variants:
    if v == "smoke":
      apply_smoke(config)
    else:
      raise ValueError(f"config arg: unknown variant {v!r}; this config knows ['smoke']")
  config.lock()
  return config
