"""Optimisers from a config section, all through optax.

    config.optim = ConfigDict(dict(
        name="adam",            # adam | adamw | sgd | rmsprop | adagrad
        learning_rate=1e-3,
        schedule="constant",    # constant | cosine | warmup_cosine
        warmup_steps=0,
        decay_steps=0,          # the schedule's length; 0 = num_steps
        momentum=0.0,           # sgd only
        weight_decay=0.0,       # adamw: decoupled (Loshchilov & Hutter 2019); others: L2 on the gradient
        clip_norm=0.0,          # clip by global norm when > 0 (Pascanu et al. 2013)
        clip_value=0.0,         # clip each gradient entry to [-v, v] when > 0
    ))

The schedule ``epoch_decay`` (Zaremba et al. 2014) needs three more fields,
which only configs that use it define: ``steps_per_epoch``,
``decay_after_epochs`` (E) and ``decay_rate`` (r); the rate of 0-based epoch
e = step // steps_per_epoch is ``learning_rate * r ** max(e + 1 - E, 0)``:
E epochs at the full rate, then one factor r per epoch.

The chain is: clip by value, clip by global norm, then for "adamw" the Adam
scaling followed by decoupled weight decay (g + wd * p after the moments), and
for every other optimiser the L2 penalty added to the gradient first (wd * p
joins the moments: PyTorch's ``weight_decay``); last the learning rate
(negative, with its schedule). "adam" with weight_decay > 0 is therefore Adam
with L2, and differs from "adamw" (tested against ``optax.adamw``).
"""

from __future__ import annotations

import optax

from recurrent.checks import check_int

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "epoch_decay")


def make_schedule(optim, total_steps: int) -> optax.Schedule:
  """The learning-rate schedule named by ``optim.schedule``, over ``optim.decay_steps`` or ``total_steps``."""
  lr = optim.learning_rate
  total_steps = optim.get("decay_steps", 0) or total_steps
  if optim.schedule == "constant":
    return optax.constant_schedule(lr)
  if optim.schedule == "cosine":
    return optax.cosine_decay_schedule(lr, max(total_steps, 1))
  if optim.schedule == "warmup_cosine":
    if optim.warmup_steps >= total_steps:
      raise ValueError(f"optim.warmup_steps: the warmup_cosine schedule needs fewer warmup steps "
                       f"than num_steps={total_steps}, got {optim.warmup_steps}")
    return optax.warmup_cosine_decay_schedule(0.0, lr, optim.warmup_steps, max(total_steps, 1))
  if optim.schedule == "epoch_decay":
    for field in ("steps_per_epoch", "decay_after_epochs"):
      check_int(f"optim.{field}", optim.get(field, "<absent>"),
                note="the epoch_decay schedule needs it")
    if "decay_rate" not in optim or not 0 < optim.decay_rate <= 1:
      raise ValueError(f"optim.decay_rate: the epoch_decay schedule needs a rate in (0, 1], "
                       f"got {optim.get('decay_rate', '<absent>')!r}")
    S = optim.steps_per_epoch
    return optax.exponential_decay(lr, transition_steps=S, decay_rate=optim.decay_rate,
                                   transition_begin=(optim.decay_after_epochs - 1) * S,
                                   staircase=True)
  raise ValueError(f"optim.schedule: must be one of {SCHEDULES}, got {optim.schedule!r}")


def check_optim(optim) -> None:
  """Fails early, naming the field, on a value optax would misread."""
  if optim.name not in OPTIMIZERS:
    raise ValueError(f"optim.name: must be one of {OPTIMIZERS}, got {optim.name!r}")
  if optim.schedule not in SCHEDULES:
    raise ValueError(f"optim.schedule: must be one of {SCHEDULES}, got {optim.schedule!r}")
  if not optim.learning_rate > 0:
    raise ValueError(f"optim.learning_rate: must be > 0, got {optim.learning_rate!r}")
  if not optim.learning_rate < float("inf"):
    raise ValueError(f"optim.learning_rate: must be finite, got {optim.learning_rate!r}")
  for field in ("weight_decay", "clip_norm", "clip_value", "warmup_steps", "momentum",
                "decay_steps"):
    if field not in optim:
      continue
    if not 0 <= optim[field] < float("inf"):  # NaN fails too
      raise ValueError(f"optim.{field}: must be finite and >= 0, got {optim[field]!r}")
  if optim.momentum >= 1:
    raise ValueError(f"optim.momentum: must be in [0, 1), got {optim.momentum!r}")


def make_optimizer(optim, total_steps: int) -> optax.GradientTransformation:
  """The optax chain described by ``optim`` (see the module docstring)."""
  check_optim(optim)
  parts = []
  if optim.clip_value > 0:
    parts.append(optax.clip(optim.clip_value))
  if optim.clip_norm > 0:
    parts.append(optax.clip_by_global_norm(optim.clip_norm))
  decoupled = optim.name == "adamw"
  if optim.weight_decay > 0 and not decoupled:
    parts.append(optax.add_decayed_weights(optim.weight_decay))   # L2: before the moments
  parts.append({
      "adam": optax.scale_by_adam,
      "adamw": optax.scale_by_adam,
      "rmsprop": optax.scale_by_rms,
      "adagrad": optax.scale_by_rss,
      "sgd": lambda: optax.trace(decay=optim.momentum) if optim.momentum else optax.identity(),
  }[optim.name]())
  if optim.weight_decay > 0 and decoupled:
    parts.append(optax.add_decayed_weights(optim.weight_decay))   # decoupled: after them
  parts.append(optax.scale_by_learning_rate(make_schedule(optim, total_steps)))
  return optax.chain(*parts)
