"""The sections every training config shares; experiment configs start from ``base_config()``.

    from configs import base

    def get_config(arg=None):
      config = base.base_config()
      config.task.name = "adding"          # recurrent/tasks/adding.py
      config.task.seq_len = 100            # task fields are the task's own
      config.model.cell = "lstm"
      ...
      return base.finalize(config, arg)    # applies :smoke and other variants, locks

A config with its own variants passes them to ``finalize``: bare flags
(``:bidirectional``) and ``name=value`` choices (``:cell=gru``), e.g.

    base.finalize(config, arg, flags={"bidirectional": base.set_to("model.bidirectional", True)},
                  choices={"cell": base.choice_of("model.cell", ("rnn", "gru")),
                           "size": base.Choice(("small", "large"), set_size)},  # set_size(config, value)
                  smoke=[shrink_embeddings])   # after the base smoke, all after the other variants

Every field is set here, explicitly, with a comment; nothing has a hidden
default in the trainer. ``finalize`` locks the ConfigDict so that a misspelled
``--config.FIELD=...`` override fails.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import ml_collections

from recurrent.checks import check_int


class Choice(NamedTuple):
  """A ``name=value`` variant: the values it takes and ``apply(config, value)``, which sets them."""
  values: Sequence[str]
  apply: Callable[[ml_collections.ConfigDict, str], None]


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
  config.model.highway = False         # or a learned gate between them (Srivastava et al. 2015)
  config.model.impl = "auto"           # auto | hoisted | scan | associative (recurrent.layers.unroll)
  config.model.remat = 0               # > 0: recompute chunks of this many steps (memory for time)
  config.model.unroll = 1              # steps per scan iteration
  config.model.param_dtype = "float32" # float32 | bfloat16 | float16 | float64 weights (carries float32)

  config.optim = optim_config(learning_rate=1e-3)

  config.batch_size = 32
  config.num_steps = 1000              # the step budget (the one field a resume may change)
  config.log_every = 50                # steps between log lines / metric writes
  config.eval_every = 200              # steps between evaluations on the held-out split
  config.checkpoint_every = 200        # steps between checkpoints (and one at the end)
  config.keep_checkpoints = 3          # the last K are kept, plus the best by the eval metric
  config.eval_batches = 0              # evaluate on at most this many held-out batches; 0 = all
  config.num_devices = 0               # devices on the mesh axis 'data' (batch split, params replicated); 0 = all
  return config


def optim_config(learning_rate: float, clip_norm: float | None = 0.0,
                 decay_steps: int | None = 0) -> ml_collections.ConfigDict:
  """The optimiser section (``recurrent.training.optim``): Adam at a constant ``learning_rate``.

  Shared by ``base_config`` and the lab configs (gradient_decay.py, horizon_sweep.py), which
  change fields after it. ``clip_norm=None`` leaves that field out (the gradient lab sets it per
  run from its ``clip_norms``), ``decay_steps=None`` leaves out the schedule's length (the lab
  configs have none).
  """
  optim = ml_collections.ConfigDict()
  optim.name = "adam"                  # adam | adamw | sgd | rmsprop | adagrad (adamw: decoupled decay)
  optim.learning_rate = learning_rate
  optim.schedule = "constant"          # constant | cosine | warmup_cosine
  optim.warmup_steps = 0
  if decay_steps is not None:
    optim.decay_steps = decay_steps    # the schedule's length; 0 = num_steps
  optim.momentum = 0.0                 # sgd only
  optim.weight_decay = 0.0             # adamw: decoupled; the others: L2 added to the gradient
  if clip_norm is not None:
    optim.clip_norm = clip_norm        # clip by global norm, when > 0
  optim.clip_value = 0.0               # clip each entry to [-v, v], when > 0
  return optim


def long_range_task(name: str, delay: int, num_eval_batches: int) -> ml_collections.ConfigDict:
  """The task section of the long-range tasks (recurrent/tasks/: adding, copy_memory, first_token).

  Shared by configs/adding.py (one model, the general trainer) and the gradient lab's configs
  (gradient_decay.py, horizon_sweep.py, which set ``name`` and ``delay`` per point).
  """
  task = ml_collections.ConfigDict()
  task.name = name                     # adding | copy_memory | first_token
  task.delay = delay                   # T: sequence length (adding) or gap to bridge
  task.num_symbols = 8                 # first token: V symbols (copy memory always uses 8)
  task.embed_size = 16                 # token tasks: embedding size (unused by adding)
  task.num_eval_batches = num_eval_batches  # held-out batches of batch_size (the general trainer)
  return task


def apply_smoke(config: ml_collections.ConfigDict) -> None:
  """Shrinks a config so that it trains a few steps in seconds (for tests)."""
  config.model.hidden_sizes = tuple(min(h, 16) for h in config.model.hidden_sizes)
  config.batch_size = min(config.batch_size, 8)
  config.num_steps = 6
  config.log_every = 1     # every step logged: one compile of the train step (the loop compiles a
                           # second, quiet variant only when some steps do not log)
  config.eval_every = 3
  config.checkpoint_every = 3
  config.eval_batches = min(config.eval_batches, 2) if config.eval_batches else 2


def int_ref(config: ml_collections.ConfigDict, path: str, least: int = 1) -> ml_collections.FieldReference:
  """A reference to the integer field ``path``, for a field derived from it, checked when that is read.

  ``config.num_steps = base.int_ref(config, "task.epochs") * steps_per_epoch`` follows
  ``--config.task.epochs=N``, and a bad N (0, -1) fails as "task.epochs: must be an integer >= 1,
  got 0" wherever num_steps is first read (the trainer's checks, config.json), not as a
  num_steps of 0 or a ZeroDivisionError. Setting the derived field itself cuts the link.
  """
  *parents, name = path.split(".")

  def check(value):
    check_int(path, value, least)
    return value
  return derive(check, functools.reduce(getattr, parents, config).get_ref(name))


def derive(fn: Callable[..., Any], first: ml_collections.FieldReference,
           *rest: ml_collections.FieldReference) -> ml_collections.FieldReference:
  """A field computed as ``fn(first, *rest)`` from the values the references hold when it is read.

  ml_collections' own arithmetic on references (``ref * 3``) is built this way; ``fn`` may
  check its arguments and raise, naming the fields.
  """
  return first._apply_op(fn, *rest)  # pylint: disable=protected-access  (no public form)


def set_to(path: str, value: Any) -> Callable[[ml_collections.ConfigDict], None]:
  """A flag that sets the dotted field ``path`` (``"model.bidirectional"``) to ``value``."""
  return lambda config: _set(config, path, value)


def choice_of(path: str, values: Sequence[str]) -> Choice:
  """A choice that sets the dotted field ``path`` (``"model.cell"``) to the value given."""
  return Choice(tuple(values), lambda config, value: _set(config, path, value))


def _set(config: ml_collections.ConfigDict, path: str, value: Any) -> None:
  *parents, name = path.split(".")
  setattr(functools.reduce(getattr, parents, config), name, value)


def apply_variants(config: ml_collections.ConfigDict, arg: str | None,
                   flags: Mapping[str, Callable[[ml_collections.ConfigDict], None]] | None = None,
                   choices: Mapping[str, Choice] | None = None) -> None:
  """Applies the variants that ``arg`` names, comma-separated: bare flags (``bidirectional``) and ``name=value``.

  ``flags[name](config)`` applies a flag, ``choices[name].apply(config, value)``
  a choice. Every variant is checked before any is applied; then they apply in
  the order given (a repeated choice: the last wins), except ``smoke``, which
  applies after all the others so that it shrinks what they set. An unknown
  name fails listing the ones this config knows; a choice's value outside
  ``values`` fails listing those.
  """
  flags, choices = dict(flags or {}), dict(choices or {})
  if set(flags) & set(choices):
    raise ValueError(f"variants {sorted(set(flags) & set(choices))} are both flags and choices")
  known = [f"{n}={'|'.join(c.values)}" for n, c in choices.items()] + list(flags)
  steps = []
  for v in [a for a in (arg or "").split(",") if a]:
    name, eq, value = v.partition("=")
    if name in choices:
      if value not in choices[name].values:
        raise ValueError(f"config arg: unknown {name} {value!r} in {v!r}; "
                         f"{name} must be one of {list(choices[name].values)}")
      steps.append((name, choices[name].apply, (value,)))
    elif name in flags and not eq:
      steps.append((name, flags[name], ()))
    elif name in flags:
      raise ValueError(f"config arg: {name!r} takes no value, got {v!r}; this config knows {known}")
    else:
      raise ValueError(f"config arg: unknown variant {v!r}; this config knows {known}")
  for _, apply, args in sorted(steps, key=lambda s: s[0] == "smoke"):  # stable: the rest keep their order
    apply(config, *args)


def finalize(config: ml_collections.ConfigDict, arg: str | None,
             flags: Mapping[str, Callable[[ml_collections.ConfigDict], None]] | None = None,
             choices: Mapping[str, Choice] | None = None,
             smoke: Sequence[Callable[[ml_collections.ConfigDict], None]] = ()) -> ml_collections.ConfigDict:
  """Applies the variants of ``arg`` (``apply_variants``), then locks the config.

  Every config knows ``smoke``: ``apply_smoke`` and then, in order, the
  config's own shrinking steps ``smoke``, after all the other variants.
  """
  def apply_all_smoke(c):
    apply_smoke(c)
    for step in smoke:
      step(c)

  apply_variants(config, arg, flags={**(flags or {}), "smoke": apply_all_smoke}, choices=choices)
  config.lock()
  return config
