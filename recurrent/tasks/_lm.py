"""The one code path of every language model here: stateful truncated BPTT over a token stream.

Shape legend: B streams, T window length, V vocabulary, W windows.

    train: window k of each stream (``recurrent.data.stream``), from the carry
           after window k - 1 (zeros at an epoch's first window)
    loss:  sum_t mean_b -log p(y_bt) with ``sum_over_time`` (Zaremba et al.'s
           code: their learning rate of 1 and clipping at 5 assume it), else
           the mean over the window's tokens
    eval:  every token of the split once, the state carried over the whole
           split (``eval_streams`` streams; 1 = one unroll)

Metrics per token: ``nll`` (nats), ``<bits_name>`` (nll / ln 2), accuracy;
``ppl`` = exp(nll over the split) is derived. A window whose mean nll
exceeds log(float32 max) ~ 88.7, where perplexity overflows, counts as
non-finite: the trainer stops there naming the step, as it does for NaN.

The report scores the test split the same way (``test_nll``, ``test_ppl``;
its first ``config.eval_batches`` windows when that is > 0, as for valid)
and samples ``sample_len`` tokens after ``prompt`` at each temperature
through ``recurrent.decoding`` (0 = greedy), returned for the trainer to
append to ``<workdir>/samples.txt``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from recurrent import decoding
from recurrent.checks import check_int
from recurrent.data import stream
from recurrent.layers import make_stack
from recurrent.models import stack_kwargs
from recurrent.lm import StreamLM
from recurrent.tasks.base import Evaluator, Log, Report, Task, token_metrics

LOG_FLOAT32_MAX = math.log(np.finfo(np.float32).max)  # ~88.72: exp of a larger mean nll overflows


def reset_where(reset, carry):
  """The carry, zeroed where ``reset`` (a bool scalar) is True: an epoch's first window starts fresh."""
  return jax.tree.map(lambda c: jnp.where(reset, jnp.zeros_like(c), c), carry)


def window_loss(logits_BTV, batch, sum_over_time: bool, bits_name: str):
  """(differentiated loss, metrics {name: (total, count)}) of one window."""
  targets_BT = batch["targets"]
  mean, tokens = token_metrics(logits_BTV.astype(jnp.float32), targets_BT, batch["weights"] > 0)
  total, n = tokens["loss"]
  loss = total / targets_BT.shape[0] if sum_over_time else mean
  loss = jnp.where(mean > LOG_FLOAT32_MAX, jnp.inf, loss)  # perplexity would overflow: diverged
  return loss, {"nll": (total, n), bits_name: (total / math.log(2.0), n),
                "accuracy": tokens["accuracy"]}


def generate(model: StreamLM, params, prompt_T: np.ndarray, rng, num_tokens: int,
             temperature: float) -> jax.Array:
  """[num_tokens] ids after the prompt: read it (teacher forcing), then sample one token at a time."""
  carries = model.initial_carries(1)
  prompt_1T = jnp.asarray(prompt_T, jnp.int32)[None, :]
  if prompt_1T.shape[1] > 1:
    _, carries = model.apply(params, prompt_1T[:, :-1], carries)
  step_fn = lambda tokens_B, c: model.step(params, tokens_B, c)
  if temperature == 0:
    return decoding.greedy(step_fn, carries, prompt_1T[:, -1], num_tokens).tokens[0]
  return decoding.sample(step_fn, carries, rng, prompt_1T[:, -1], num_tokens,
                         temperature=temperature).tokens[0]


def check_task_fields(t) -> None:
  for field in ("seq_len", "eval_streams", "sample_len"):
    check_int(f"task.{field}", t[field])
  if not all(temp >= 0 for temp in t.temperatures):
    raise ValueError(f"task.temperatures: each must be >= 0 (0 = greedy), got {t.temperatures!r}")


def stream_lm_task(config, model: StreamLM, train_ids: np.ndarray, valid_ids: np.ndarray,
                   test_ids: np.ndarray | None, prompt_ids: np.ndarray,
                   detokenize: Callable[[Sequence[int]], str], bits_name: str = "bits") -> Task:
  """The Task of a stateful LM over encoded splits (``test_ids`` None: no test split)."""
  t = config.task
  check_task_fields(t)
  B, T, E = config.batch_size, t.seq_len, t.eval_streams
  stream.check_length(len(train_ids), B, T, "train split")
  for name, ids in (("valid split", valid_ids), ("test split", test_ids)):
    if ids is not None and len(ids) < 2:
      raise ValueError(f"{name}: needs at least 2 tokens, got {len(ids)}")
  train_BL = stream.streams(train_ids, B)
  W = stream.windows_per_epoch(train_BL, T)
  steps_per_epoch = config.optim.get("steps_per_epoch") if config.optim.schedule == "epoch_decay" \
      else None
  if steps_per_epoch is not None and steps_per_epoch != W:
    raise ValueError(f"optim.steps_per_epoch: {steps_per_epoch}, but the training split gives "
                     f"{W} windows per epoch ({len(train_ids)} tokens, {B} streams, windows of {T})")
  logging.info("stream LM: %d training tokens in %d streams, one epoch = %d windows of %d",
               len(train_ids), B, W, T)

  def loss_fn(params, batch, rng, carry):
    logits_BTV, carry = model.apply(params, batch["inputs"], reset_where(batch["reset"], carry), rng)
    loss, metrics = window_loss(logits_BTV, batch, t.sum_over_time, bits_name)
    return loss, (metrics, carry)

  def train_batch(step, rows=None):  # rows: a slice of the streams (one process's share)
    return stream.train_window(train_BL[rows or slice(None)], step, T)

  def eval_batches():
    return stream.eval_windows(valid_ids, E, T)

  derived_metrics = lambda m: {"ppl": math.exp(min(m["nll"], 700.0))}
  evaluate = Evaluator(loss_fn, model.initial_carries, derived_metrics,
                       max_batches=config.eval_batches)  # the limit the valid split has

  def score(params, ids) -> dict:
    """{nll, ppl} of a split with the state carried over it (as the trainer's)."""
    metrics = evaluate(params, stream.eval_windows(ids, E, T))
    return {"nll": metrics["nll"], "ppl": metrics["ppl"]}

  samplers = {temp: jax.jit(lambda p, k, temp=temp: generate(model, p, prompt_ids, k, t.sample_len, temp))
              for temp in t.temperatures}

  def report(params, step):
    out = {}
    if test_ids is not None:
      out = {f"test_{k}": v for k, v in score(params, test_ids).items()}
    rng = jax.random.fold_in(jax.random.key(config.seed), step)
    lines = []
    for temp, sampler in samplers.items():
      sample = detokenize(prompt_ids) + detokenize(np.asarray(sampler(params, rng)))
      logging.info("stream LM: step %d, temperature %.2f:\n%s", step, temp, sample)
      lines.append(f"--- step {step}, temperature {temp}\n{sample}\n")
    return Report(scalars=out, logs={"samples.txt": Log("".join(lines))})

  return Task(init_params=model.init, loss_fn=loss_fn, train_batch=train_batch,
              eval_batches=eval_batches, num_tokens=lambda b: int(np.sum(b["weights"])),
              eval_metric="nll", eval_mode="min", report=report,
              initial_carry=model.initial_carries,
              derived_metrics=derived_metrics)


def make_model(model_config, vocab_size: int) -> StreamLM:
  """The StreamLM of a ``config.model`` section (configs/ptb.py lists the fields)."""
  m = model_config
  if not 0 <= m.init_scale < float("inf"):   # NaN fails too
    raise ValueError(f"model.init_scale: must be finite and >= 0 (0: the default init), got "
                     f"{m.init_scale!r}")
  check_int("model.embed_size", m.embed_size)
  stack = make_stack(m.cell, m.embed_size, tuple(m.hidden_sizes), **stack_kwargs(m))
  return StreamLM(stack, vocab_size, dropout=m.dropout, variational=m.variational,
                  embed_dropout=m.embed_dropout, tie_weights=m.tie_weights, init_scale=m.init_scale)
