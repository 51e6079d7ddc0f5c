"""The contract between an experiment's task and the trainer.

A task owns its data, its model and its loss; the trainer owns the loop,
optimiser, checkpoints and metrics. Everything the trainer calls inside jit
is pure.

Data are a pure function of the step: ``train_batch(step)`` draws the batch
for a step from (seed, step) alone (an epoch's permutation from
``fold_in(seed, epoch)``), so the data-iterator position *is* the step and a
resumed run sees exactly the batches an uninterrupted run would.

Metrics are (total, count) pairs so that evaluation over many batches of
unequal size averages exactly: the trainer sums totals and counts over the
split and reports total / count.

A *stateful* task (truncated BPTT over a long stream: language models) sets
``initial_carry``. Its ``loss_fn`` then takes the carry and returns the carry
after the batch as well,

    loss_fn(params, batch, rng, carry) -> (loss, (metrics, carry))

and the trainer threads it: the carry after step k (gradient stopped) is the
carry given to step k + 1; it lives in ``TrainState.carry`` and is
checkpointed with the parameters. The task resets it where its data say so
(a flag in the batch at an epoch start). Evaluation starts from
``initial_carry(B)`` and carries the state through ``eval_batches()`` in
order, so those must be consecutive windows of the held-out streams.

A task's ``report`` returns a ``Report``: scalars, and the files it has to
show as data (texts, JSON, running logs, and figures described by a plot
kind and its arrays). The trainer writes them to the workdir
(``recurrent.training.reports``, which draws each figure with
``recurrent.training.plots``); no task module writes a file or plots.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
Batch = dict[str, Any]
Metrics = dict[str, tuple[Array, Array]]  # name -> (total, count)


@dataclasses.dataclass(frozen=True)
class Figure:
  """A figure as data: ``kind`` names a drawing of ``recurrent.training.plots.KINDS``, ``data``
  holds its arrays, labels and title (the keyword arguments of that drawing)."""

  kind: str
  data: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Log:
  """Text appended to a running file (one record per evaluation); ``header`` starts a new file."""

  text: str
  header: str = ""


@dataclasses.dataclass
class Report:
  """What a task's ``report`` has to show, keyed by file name in the workdir.

  Attributes:
    scalars: name -> float, logged with the evaluation's metrics.
    texts: file name -> the file's whole content.
    json: file name -> JSON data (written indented).
    logs: file name -> a ``Log`` appended to the file.
    figures: file name (a .png) -> ``Figure``.
  """

  scalars: dict[str, float] = dataclasses.field(default_factory=dict)
  texts: dict[str, str] = dataclasses.field(default_factory=dict)
  json: dict[str, Any] = dataclasses.field(default_factory=dict)
  logs: dict[str, Log] = dataclasses.field(default_factory=dict)
  figures: dict[str, Figure] = dataclasses.field(default_factory=dict)

  def files(self) -> list[str]:
    """The names of every file the report holds."""
    return [*self.texts, *self.json, *self.logs, *self.figures]


@dataclasses.dataclass(frozen=True)
class Task:
  """What the trainer needs from an experiment.

  Attributes:
    init_params: rng -> parameter pytree.
    loss_fn: (params, batch, rng) -> (loss, metrics). ``loss`` is the scalar
      that is differentiated (a mean); ``metrics`` maps names to (total,
      count). ``rng`` is a key in training (dropout, scheduled sampling) and
      None in evaluation, which must then be deterministic.
    train_batch: step -> batch, a pure function of the config's seed and step.
      It may also take ``rows`` (a slice of the global batch): then it returns
      only those rows, padded to the global batch's length (``batching.pad(...,
      rows=)``), and each process of a multi-process run builds only its own
      (``recurrent.training.distributed.train_batch``; checked at the first step).
    eval_batches: () -> iterable of batches covering the held-out split.
    num_tokens: batch -> the number of real (unpadded) tokens, for tokens/s.
    eval_metric: the metric that picks the best checkpoint.
    eval_mode: "min" or "max" for ``eval_metric``.
    report: optional (params, step) -> ``Report``; called at each evaluation
      for samples, figures or metrics that need Python (BLEU, F1). Runs
      outside jit, on process 0; the trainer writes its files.
    initial_carry: optional batch_size -> the zero carry of a stateful task
      (see the module docstring); None for a stateless one.
    derived_metrics: optional {name: mean} -> {name: value}, scalars that are
      not means (perplexity = exp(mean loss)), added to each evaluation's.
  """

  init_params: Callable[[Array], Any]
  loss_fn: Callable[[Any, Batch, Array | None], tuple[Array, Metrics]]
  train_batch: Callable[[int], Batch]
  eval_batches: Callable[[], Iterable[Batch]]
  num_tokens: Callable[[Batch], Any]
  eval_metric: str = "loss"
  eval_mode: str = "min"
  report: Callable[[Any, int], Report] | None = None
  initial_carry: Callable[[int], Any] | None = None
  derived_metrics: Callable[[dict], dict] | None = None

  def __post_init__(self):
    if self.eval_mode not in ("min", "max"):
      raise ValueError(f"eval_mode: must be 'min' or 'max', got {self.eval_mode!r}")


def dropout_rngs(rng: Array | None) -> dict | None:
  """The ``rngs`` of a Flax ``apply``: {"dropout": rng} in training, None in evaluation."""
  return None if rng is None else {"dropout": rng}


def argmax_hits(logits_XV: Array, targets_X: Array) -> Array:
  """``argmax(logits, -1) == targets`` (ties to the first index), without XLA's variadic argmax reduce.

  The target is the argmax iff its logit is the row's maximum and every
  earlier logit is below it. Two plain max reductions: XLA:CPU does not
  vectorise the (value, index) reduce of ``jnp.argmax``, which took 16-23 ms
  for [400, 10,000] logits on one core against 2.6 ms for this (session 6,
  PERFORMANCE.md); it was the largest single op of the logged LM step. Equal
  to ``jnp.argmax`` for logits without NaN (a NaN row counts as a miss), -inf
  included (tested).
  """
  target_X1 = jnp.take_along_axis(logits_XV, targets_X[..., None], -1)
  before_XV = jax.lax.broadcasted_iota(targets_X.dtype, logits_XV.shape, logits_XV.ndim - 1) < targets_X[..., None]
  earlier_X1 = jnp.max(jnp.where(before_XV, logits_XV, -jnp.inf), -1, keepdims=True)
  first_X1 = (earlier_X1 < target_X1) | (targets_X[..., None] == 0)
  return ((target_X1 >= jnp.max(logits_XV, -1, keepdims=True)) & first_X1)[..., 0]


def token_metrics(logits_BTV: Array, targets_BT: Array, mask_BT: Array) -> tuple[Array, Metrics]:
  """Masked token cross-entropy and accuracy: (mean loss over real tokens, {'loss', 'accuracy'}).

  Positions where ``mask_BT`` is False (padding) count nowhere; their targets
  may hold anything (they are replaced by 0 before the lookup).
  """
  safe_BT = jnp.where(mask_BT, targets_BT, 0)
  ce_BT = optax.softmax_cross_entropy_with_integer_labels(logits_BTV, safe_BT)
  count = jnp.sum(mask_BT)
  total = jnp.sum(jnp.where(mask_BT, ce_BT, 0.0))
  correct = jnp.sum(argmax_hits(logits_BTV, safe_BT) & mask_BT)
  return total / jnp.maximum(count, 1), {"loss": (total, count), "accuracy": (correct, count)}


def eval_step(loss_fn: Callable, stateful: bool = False) -> Callable:
  """The deterministic step of an evaluation (rng=None), metrics as float32 (total, count).

  ``(params, batch) -> metrics``, or for a stateful task
  ``(params, batch, carry) -> (metrics, carry)``.
  """
  as_f32 = lambda metrics: {k: (jnp.asarray(t, jnp.float32), jnp.asarray(c, jnp.float32))
                            for k, (t, c) in metrics.items()}
  if stateful:
    def stateful_step(params, batch, carry):
      _, (metrics, carry) = loss_fn(params, batch, None, carry)
      return as_f32(metrics), carry
    return stateful_step
  return lambda params, batch: as_f32(loss_fn(params, batch, None)[1])


class Evaluator:
  """``evaluate(params, batches) -> {name: sum of totals / sum of counts}`` over a split.

  The one evaluator: the trainer scores its held-out split with it, and a
  task's ``report`` scores other splits (train, test) with the same rule.
  One jitted ``eval_step``; the per-batch metrics stay on the device until
  the split is done (one transfer) and are summed in float64 on the host
  (``mean_metrics``). A stateful task's carry starts from
  ``initial_carry(B)`` and is carried through the batches in order.
  ``place`` puts each batch where the step runs (the trainer: over the
  devices and processes); ``max_batches`` > 0 stops after that many;
  ``derived_metrics`` adds the scalars that are not means (perplexity).
  """

  def __init__(self, loss_fn: Callable, initial_carry: Callable | None = None,
               derived_metrics: Callable | None = None, place: Callable | None = None,
               max_batches: int = 0, name: str = "batches"):
    self.name = name  # what the error for an empty split names
    self.initial_carry, self.derived_metrics = initial_carry, derived_metrics
    self.place = place or (lambda batch: batch)
    self.max_batches = max_batches
    self.step = jax.jit(eval_step(loss_fn, initial_carry is not None))

  @classmethod
  def for_task(cls, task: Task, **kwargs) -> "Evaluator":
    """The evaluator of ``task``'s loss, carry and derived metrics (``kwargs``: place, max_batches)."""
    return cls(task.loss_fn, task.initial_carry, task.derived_metrics, **kwargs)

  def __call__(self, params, batches: Iterable[Batch]) -> dict[str, float]:
    per_batch, carry = [], None
    for i, batch in enumerate(batches):
      if self.max_batches and i >= self.max_batches:
        break
      batch = self.place(batch)
      if self.initial_carry is None:
        per_batch.append(self.step(params, batch))
        continue
      if carry is None:
        carry = self.initial_carry(next(x.shape[0] for x in jax.tree.leaves(batch) if x.ndim))
      metrics, carry = self.step(params, batch, carry)
      per_batch.append(metrics)
    if not per_batch:
      raise ValueError(f"{self.name}: yielded no batches")
    means = mean_metrics(jax.device_get(per_batch))
    if self.derived_metrics is not None:
      means.update(self.derived_metrics(means))
    return means


def mean_metrics(batches: Iterable[Mapping[str, tuple]]) -> dict[str, float]:
  """``{name: sum of totals / sum of counts}`` over batches of ``{name: (total, count)}``.

  Totals and counts are summed on the host in float64: a float32 running sum
  of per-token losses stops growing by small terms once it is large (at 2^24
  ulp 2). A metric whose count is 0 over all batches (say, accuracy on the
  changed bytes of a split that has none) has no mean and is left out, so
  the JSONL and TensorBoard records simply lack it, as if never logged.
  """
  totals: dict[str, np.ndarray] = {}
  for batch in batches:
    for k, (t, c) in batch.items():
      tc = np.array([t, c], np.float64)
      totals[k] = totals[k] + tc if k in totals else tc
  return {k: float(t / c) for k, (t, c) in totals.items() if c != 0}
