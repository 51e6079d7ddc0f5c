"""Case correction (seed 004's RNN demo): restore the capitals of lowercased text, byte by byte.

Shape legend: B batch, T time (bytes), V = 256 byte values.

Data: random crops of ``min_len`` to ``max_len`` bytes of *The Adventures of
Sherlock Holmes* (``recurrent.data.text``); the input is the crop with its
ASCII capitals lowered, the target is the crop itself, so input and target
are aligned byte for byte. Inputs are 256-dimensional one-hot vectors and
the output is a 256-way softmax over bytes, as in the seed:

    x_t = onehot(lower(c_t)),  h_t = cell(h_{t-1}, x_t),  p(c_t | x) = softmax(W h_t + b)
    loss = -(1/N) sum_{b, t < L_b} log p(c_{b,t} | x_b)            (padding excluded)

``task.architecture = "encoder_decoder"`` (the seed's revisited task) reads
the whole crop with an encoder and writes the cased one with an attentional
decoder (:func:`make_encoder_decoder`), its metrics from greedy decoding.

A unidirectional model sees only the past (the seed's point: it cannot know
that the "m" of "mr." starts a title); ``model.bidirectional`` lets every
output see the whole crop. Metrics: ``accuracy`` over every byte and
``changed_accuracy`` over the bytes whose case changes (the capitals of the
target); copying the input scores ~97% on the first and 0% on the second.

An epoch is ``steps_per_epoch`` = ceil(N_train / (B * mean crop length))
steps; the report, at each evaluation, prints the model's output on the
seed's fixed test sentence with the epoch, and returns it as a line for the
trainer to append to ``<workdir>/fixed_sentence.txt``.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from recurrent import decoding
from recurrent.checks import check_int
from recurrent.data import text
from recurrent.models import SequenceTagger, rnn_kwargs
from recurrent.seq2seq import BOS, EOS, PAD
from recurrent.tasks import _seq2seq
from recurrent.layers import time_mask
from recurrent.tasks.base import Log, Report, Task, argmax_hits, dropout_rngs, token_metrics

ARCHITECTURES = ("tagger", "encoder_decoder")
SPECIALS = 3   # an encoder-decoder token is a byte + 3: ids 0, 1, 2 are PAD, BOS, EOS (recurrent.seq2seq)


def make_pair(crops_BT: np.ndarray, lengths_B: np.ndarray) -> dict:
  """A batch from padded crops: inputs lowered (ASCII only), targets as cased, with lengths."""
  return {"inputs": text.lowercase_ascii(crops_BT), "targets": crops_BT, "lengths": lengths_B}


def case_metrics(logits_BTV, batch) -> tuple[jax.Array, dict]:
  """Mean cross-entropy over valid bytes and the (total, count) metrics."""
  inputs_BT, targets_BT, lengths_B = batch["inputs"], batch["targets"], batch["lengths"]
  valid_BT = time_mask(lengths_B, targets_BT.shape[1])
  changed_BT = valid_BT & (inputs_BT != targets_BT)
  loss, metrics = token_metrics(logits_BTV, targets_BT, valid_BT)
  correct_BT = argmax_hits(logits_BTV, targets_BT)
  metrics["changed_accuracy"] = (jnp.sum(correct_BT & changed_BT), jnp.sum(changed_BT))
  return loss, metrics


def build(config) -> Task:
  t = config.task
  if t.architecture not in ARCHITECTURES:
    raise ValueError(f"task.architecture: must be one of {ARCHITECTURES}, got {t.architecture!r}")
  check_int("task.train_bytes", t.train_bytes, 0)
  check_int("task.epochs", t.epochs)
  check_test_pair(t.test_input, t.test_target)
  book = text.read_text(t.path)
  if t.ascii_typography:
    book = text.ascii_typography(book)
  train, held_out = text.split(text.encode(book), t.held_out_fraction)
  if t.train_bytes:
    train = train[:t.train_bytes]
  seed, B = config.seed, config.batch_size
  epoch_steps = text.steps_per_epoch(len(train), B, t.min_len, t.max_len)
  logging.info("case_correction: %d training bytes, %d held out; one epoch = %d steps of %d crops",
               len(train), len(held_out), epoch_steps, B)

  make = make_tagger if t.architecture == "tagger" else make_encoder_decoder
  init_params, loss_fn, predict = make(config)
  predict = jax.jit(predict)

  def train_batch(step):
    return make_pair(*text.random_crops(train, seed, step, B, t.min_len, t.max_len))

  eval_pieces = text.consecutive_crops(held_out, seed, t.min_len, t.max_len)

  def eval_batches():
    for i in range(0, len(eval_pieces), B):
      yield make_pair(*text.pad_batch(eval_pieces[i:i + B], t.max_len, B))

  def report(params, step):
    out, acc, changed = correct_sentence(predict, params, t.test_input, t.test_target)
    epoch = step / epoch_steps
    line = f"epoch {epoch:5.2f} step {step:6d}: {out}"
    logging.info("case_correction: %s", line)
    return Report(scalars={"epoch": epoch, "test_sentence_accuracy": acc,
                           "test_sentence_changed_accuracy": changed},
                  logs={"fixed_sentence.txt": Log(
                      line + "\n", header=f"input  {t.test_input}\ntarget {t.test_target}\n")})

  return Task(init_params=init_params, loss_fn=loss_fn, train_batch=train_batch,
              eval_batches=eval_batches, num_tokens=lambda b: int(np.sum(b["lengths"])),
              eval_metric="accuracy", eval_mode="max", report=report)


def make_tagger(config):
  """A many-to-many RNN on one-hot bytes: (init_params, loss_fn, predict)."""
  t = config.task
  model = SequenceTagger(**rnn_kwargs(config.model), num_outputs=text.VOCAB_SIZE)

  def logits_fn(params, inputs_BT, lengths_B, rng=None):
    x_BTV = jax.nn.one_hot(inputs_BT, text.VOCAB_SIZE)
    rngs = dropout_rngs(rng)
    return model.apply({"params": params}, x_BTV, lengths_B, deterministic=rng is None, rngs=rngs)

  def init_params(rng):
    x_BTV = jax.nn.one_hot(jnp.zeros((1, t.max_len), jnp.int32), text.VOCAB_SIZE)
    return model.init(rng, x_BTV, jnp.full((1,), t.max_len, jnp.int32))["params"]

  def loss_fn(params, batch, rng):
    return case_metrics(logits_fn(params, batch["inputs"], batch["lengths"], rng), batch)

  def predict(params, inputs_BT, lengths_B):
    return decoding.argmax(logits_fn(params, inputs_BT, lengths_B), -1)

  return init_params, loss_fn, predict


def seq2seq_batch(batch) -> dict:
  """A case batch as token ids (byte + 3): src = the lowered crop, tgt_in = BOS y, tgt_out = y EOS."""
  inputs_BT, targets_BT, lengths_B = (jnp.asarray(batch[k]) for k in ("inputs", "targets", "lengths"))
  B, T = targets_BT.shape
  valid_BT = time_mask(lengths_B, T)
  src_BT = jnp.where(valid_BT, inputs_BT + SPECIALS, PAD)
  tgt_BT = jnp.where(valid_BT, targets_BT + SPECIALS, PAD)
  tgt_in = jnp.concatenate([jnp.full((B, 1), BOS, tgt_BT.dtype), tgt_BT], 1)
  eos_BT1 = jnp.arange(T + 1)[None, :] == lengths_B[:, None]
  tgt_out = jnp.where(eos_BT1, EOS, jnp.concatenate([tgt_BT, jnp.zeros((B, 1), tgt_BT.dtype)], 1))
  return {"src": src_BT, "src_len": lengths_B, "tgt_in": tgt_in, "tgt_out": tgt_out,
          "tgt_len": jnp.where(lengths_B > 0, lengths_B + 1, 0), "teacher_forcing": 1.0}


def decoded_metrics(tokens_BT1, batch) -> dict:
  """(total, count) of decoded tokens (byte + 3, EOS) [B, >= T + 1] against a case batch:
  ``accuracy`` over the L reference bytes, ``changed_accuracy`` over those whose case changes,
  ``exact_match`` of whole crops (the L bytes then EOS). Rows of length 0 count for nothing."""
  inputs_BT, targets_BT, lengths_B = batch["inputs"], batch["targets"], batch["lengths"]
  T = targets_BT.shape[1]
  valid_BT = time_mask(lengths_B, T)
  changed_BT = valid_BT & (inputs_BT != targets_BT)
  correct_BT = tokens_BT1[:, :T] == targets_BT + SPECIALS
  ends_B = jnp.take_along_axis(tokens_BT1, lengths_B[:, None], 1)[:, 0] == EOS
  whole_B = jnp.all(correct_BT | ~valid_BT, 1) & ends_B & (lengths_B > 0)
  n = jnp.sum(valid_BT)
  return {"accuracy": (jnp.sum(correct_BT & valid_BT), n),
          "changed_accuracy": (jnp.sum(correct_BT & changed_BT), jnp.sum(changed_BT)),
          "exact_match": (jnp.sum(whole_B), jnp.sum(lengths_B > 0))}


def make_encoder_decoder(config):
  """Seed 004's encoder-decoder (``recurrent.seq2seq``): (init_params, loss_fn, predict).

  The encoder reads the whole lowered crop, the decoder writes the cased one
  from BOS to EOS, one byte token at a time. Training is teacher-forced:

      loss = -(1/N) sum_{b, t <= L_b} log p(y_{b,t} | y_{b,<t}, x_b),   y_{b,L_b+1} = EOS

  (the mean over the L + 1 target tokens, EOS included). The evaluation
  (``rng`` None) adds the greedy-decoded outputs' ``accuracy`` over the L
  reference bytes (an early EOS makes the rest wrong), ``changed_accuracy``
  over the bytes whose case changes and ``exact_match`` of whole crops; the
  teacher-forced ``token_accuracy`` sees the cased prefix, so only the greedy
  numbers compare with the tagger's.
  """
  vocab = text.VOCAB_SIZE + SPECIALS
  model = _seq2seq.build_model(config, vocab, vocab)
  teacher_forced = _seq2seq.make_loss_fn(model)

  def greedy(params, inputs_BT, lengths_B) -> decoding.DecodeOutput:
    """Greedy decoding of the lowered crops, at most T + 1 tokens (the bytes and EOS)."""
    b = seq2seq_batch({"inputs": inputs_BT, "targets": inputs_BT, "lengths": lengths_B})
    memory, carry = model.encode(params, b["src"], jnp.maximum(b["src_len"], 1))
    bos = jnp.full((inputs_BT.shape[0],), BOS)
    return decoding.greedy(model.step_fn(params, memory), carry, bos, inputs_BT.shape[1] + 1, EOS)

  def to_bytes(tokens):
    return jnp.where(tokens >= SPECIALS, tokens - SPECIALS, text.PAD)   # PAD and EOS read as NUL

  def loss_fn(params, batch, rng):
    loss, metrics = teacher_forced(params, seq2seq_batch(batch), rng)
    if rng is not None:
      return loss, metrics
    out = greedy(params, batch["inputs"], batch["lengths"])
    return loss, dict(metrics, **decoded_metrics(out.tokens, batch))

  def predict(params, inputs_BT, lengths_B):
    return to_bytes(greedy(params, inputs_BT, lengths_B).tokens)

  return model.init, loss_fn, predict


def printable(s: str) -> str:
  """One visible character per character: NUL (padding) -> ␀, newline -> ↵, other controls -> �."""
  return "".join(c if c.isprintable() else {"\x00": "\u2400", "\n": "\u21b5"}.get(c, "\ufffd")
                 for c in s)


def check_test_pair(sentence: str, target: str) -> tuple[np.ndarray, np.ndarray]:
  """The encoded (input, target) of the report's test sentence; fails naming the field if they do not pair."""
  x = text.encode(sentence).astype(np.int32)
  y = text.encode(target).astype(np.int32)
  if not len(y) or len(x) != len(y) or not np.array_equal(text.lowercase_ascii(y), x):
    raise ValueError(f"task.test_input, task.test_target: the input must be the (non-empty) target "
                     f"with ASCII capitals lowered, got {sentence!r} for {target!r}")
  return x, y


def correct_sentence(predict, params, sentence: str, target: str) -> tuple[str, float, float]:
  """The model's output on one sentence (decoded), its byte accuracy and its accuracy on capitals."""
  x, y = check_test_pair(sentence, target)
  pred = np.asarray(predict(params, x[None, :], np.array([len(x)], np.int32)))[0, :len(y)]
  changed = x != y
  return (printable(text.decode(pred)), float(np.mean(pred == y)),
          float(np.mean(pred[changed] == y[changed])) if changed.any() else 1.0)
