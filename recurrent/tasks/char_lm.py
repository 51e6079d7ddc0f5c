"""A character (byte) language model of *The Adventures of Sherlock Holmes*; samples from a prompt.

Shape legend: B batch, T time (bytes), V = 256 byte values.

    e_t = E[c_t],  h_t = cell(h_{t-1}, e_t),  p(c_{t+1} | c_<=t) = softmax(W h_t + b)
    bits per character = -(1/N) sum_t log2 p(c_{t+1} | c_<=t)

Tokens are the UTF-8 bytes of the text (``recurrent.data.text``); after
``ascii_typography`` all but 122 of the book's 562,457 bytes are ASCII, so
bits per byte and bits per character differ by less than 0.03%. Training
windows of ``seq_len`` bytes start at random positions of the training part
(a pure function of (seed, step)), each from a zero state. The held-out
split (the book's last part, by position) is scored once per byte, each
window after ``eval_warmup`` bytes of context that are read but not scored,
so that few predictions are made from an empty state.

Generation is one-to-many: the prompt is read with teacher forcing, then
``LanguageModel.step`` runs one byte at a time through ``recurrent.decoding``
(``sample``: each byte drawn from softmax(logits / temperature) and fed back;
``greedy`` at temperature 0). The report writes a sample per temperature to
``<workdir>/samples.txt``.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from recurrent import decoding
from recurrent.data import text
from recurrent.models import LanguageModel, rnn_kwargs
from recurrent.tasks.base import Task


def lm_metrics(logits_BTV, batch) -> tuple[jax.Array, dict]:
  """Mean cross-entropy (nats) over weighted positions; loss, bits per character and accuracy."""
  targets_BT, weights_BT = batch["targets"], batch["weights"]
  ce_BT = optax.softmax_cross_entropy_with_integer_labels(logits_BTV, targets_BT)
  n = jnp.sum(weights_BT)
  total = jnp.sum(ce_BT * weights_BT)
  correct = jnp.sum((jnp.argmax(logits_BTV, -1) == targets_BT) * weights_BT)
  metrics = {"loss": (total, n), "bpc": (total / math.log(2.0), n), "accuracy": (correct, n)}
  return total / jnp.maximum(n, 1.0), metrics


def make_step_fn(model: LanguageModel, params):
  """The decoding callback: (tokens [B], carries) -> (logits [B, V], carries), one byte ahead."""
  def step_fn(tokens_B, carries):
    return model.apply({"params": params}, tokens_B, carries, method=LanguageModel.step)
  return step_fn


def prime(model: LanguageModel, params, prompt_BT: jax.Array):
  """Reads all but the last prompt byte; returns (carries, last prompt byte [B]) to decode from."""
  B, T = prompt_BT.shape
  carries = model.initial_carries(B)
  if T > 1:
    _, carries = model.apply({"params": params}, prompt_BT[:, :-1], None, carries)
  return carries, prompt_BT[:, -1]


def generate(model: LanguageModel, params, prompt_BT, rng, num_bytes: int,
             temperature: float) -> jax.Array:
  """[B, num_bytes] bytes after the prompt: ``decoding.sample`` at ``temperature`` > 0,
  ``decoding.greedy`` (the argmax, a "cold" sample) at 0."""
  if not temperature >= 0:
    raise ValueError(f"temperature: must be >= 0 (0 = greedy), got {temperature!r}")
  carries, last_B = prime(model, params, prompt_BT)
  step_fn = make_step_fn(model, params)
  if temperature == 0:
    return decoding.greedy(step_fn, carries, last_B, num_bytes).tokens
  return decoding.sample(step_fn, carries, rng, last_B, num_bytes, temperature=temperature).tokens


def check_config(config) -> None:
  """Fails naming the field on a value of ``task.*`` or ``model.embed_size`` that the task cannot use."""
  t = config.task
  for name, value, least in (("task.seq_len", t.seq_len, 1), ("task.eval_warmup", t.eval_warmup, 0),
                             ("task.sample_len", t.sample_len, 1),
                             ("model.embed_size", config.model.embed_size, 1)):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
      raise ValueError(f"{name}: must be an integer >= {least}, got {value!r}")
  if not t.temperatures or not all(0 <= x < float("inf") for x in t.temperatures):
    raise ValueError(f"task.temperatures: must be a non-empty tuple of finite values >= 0 "
                     f"(0 = greedy), got {t.temperatures!r}")


def build(config) -> Task:
  check_config(config)
  t = config.task
  book = text.read_text(t.path)
  if t.ascii_typography:
    book = text.ascii_typography(book)
  train, held_out = text.split(text.encode(book), t.held_out_fraction)
  seed, B, T = config.seed, config.batch_size, t.seq_len
  logging.info("char_lm: %d training bytes, %d held out; one epoch = %d steps of %d x %d bytes",
               len(train), len(held_out), -(-len(train) // (B * T)), B, T)
  model = LanguageModel(**rnn_kwargs(config.model), vocab_size=text.VOCAB_SIZE,
                        embed_size=config.model.embed_size)

  def init_params(rng):
    return model.init(rng, jnp.zeros((1, T), jnp.int32))["params"]

  def loss_fn(params, batch, rng):
    rngs = {"dropout": rng} if rng is not None else {}
    logits_BTV, _ = model.apply({"params": params}, batch["inputs"], None, None,
                                deterministic=rng is None, rngs=rngs)
    return lm_metrics(logits_BTV, batch)

  def train_batch(step):
    x, y = text.lm_windows(train, seed, step, B, T)
    return {"inputs": x, "targets": y, "weights": np.ones(x.shape, np.float32)}

  eval_x, eval_y, eval_w = text.lm_eval_windows(held_out, T, t.eval_warmup)

  def eval_batches():
    for i in range(0, len(eval_x), B):
      x, y, w = (np.zeros((B,) + a.shape[1:], a.dtype) for a in (eval_x, eval_y, eval_w))
      n = min(B, len(eval_x) - i)
      x[:n], y[:n], w[:n] = eval_x[i:i + n], eval_y[i:i + n], eval_w[i:i + n]
      yield {"inputs": x, "targets": y, "weights": w}   # rows past the split: weight 0

  if not all(temp >= 0 for temp in t.temperatures):
    raise ValueError(f"task.temperatures: each must be >= 0 (0 = greedy), got {t.temperatures!r}")
  prompt = text.encode(t.prompt).astype(np.int32)
  if len(prompt) == 0:
    raise ValueError("task.prompt: must hold at least one character, got ''")
  samplers = {temp: jax.jit(lambda p, k, temp=temp: generate(
      model, p, jnp.asarray(prompt)[None, :], k, t.sample_len, temp)) for temp in t.temperatures}

  def report(params, step, workdir):
    rng = jax.random.fold_in(jax.random.key(seed), step)
    lines = []
    for temp, sampler in samplers.items():
      out = np.asarray(sampler(params, rng))[0]
      sample = t.prompt + text.decode(out)
      logging.info("char_lm: step %d, temperature %.2f:\n%s", step, temp, sample)
      lines.append(f"--- step {step}, temperature {temp}\n{sample}\n")
    if workdir:
      with open(os.path.join(workdir, "samples.txt"), "a", encoding="utf-8") as f:
        f.write("".join(lines))
    return {}

  return Task(init_params=init_params, loss_fn=loss_fn, train_batch=train_batch,
              eval_batches=eval_batches, num_tokens=lambda b: int(np.sum(b["weights"])),
              eval_metric="bpc", eval_mode="min", report=report)
