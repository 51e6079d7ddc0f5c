"""Sequential MNIST: classify a digit from its pixels read one at a time (Le et al. 2015).

The long-range benchmark of recurrent networks since the IRNN paper: the
28 x 28 image is read in scanline order as a sequence of T = 784 scalar
inputs, and the class is predicted from the last hidden state. The
*permuted* variant applies one fixed random permutation to the pixel order
(the same for every image), which breaks the local structure of scanlines
and spreads dependencies over the whole sequence. ``task.size = 14``
average-pools 2 x 2 blocks first (T = 196) for quick runs.

    x_t = pixel[perm[t]] / 255,   t = 1..T      (perm = identity unless permuted)
    h_T = stack(x_1..x_T),   p(y | x) = softmax(h_T W + b)

Splits: the last ``task.num_valid`` training images are the held-out split the
trainer evaluates (and picks the best checkpoint on); ``report`` scores the
10,000 test images (loss and accuracy) at every evaluation. Training
batches are a pure function of (seed, step): epoch e's order is a
permutation drawn from (seed, e).

Data: ``mnist/`` of ``task.data_dir`` or ``$RECURRENT_DATA_DIR`` (the original
IDX files; LeCun, Cortes & Burges, CC BY-SA 3.0).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from recurrent.checks import check_int
from recurrent.data import mnist
from recurrent.models import SequenceClassifier, rnn_kwargs
from recurrent.tasks.base import Evaluator, Report, Task, dropout_rngs, token_metrics

SIZES = (28, 14)


def pixel_sequences(images_NHW: np.ndarray, size: int, permutation: np.ndarray | None
                    ) -> np.ndarray:
  """[N, T, 1] float32 pixel sequences in [0, 1]: scanline order, pooled to ``size``, permuted."""
  if size not in SIZES:
    raise ValueError(f"task.size: must be one of {SIZES}, got {size!r}")
  x = images_NHW.astype(np.float32) / 255.0
  if size == 14:
    x = x.reshape(len(x), 14, 2, 14, 2).mean((2, 4))
  x_NT = x.reshape(len(x), size * size)
  if permutation is not None:
    x_NT = x_NT[:, permutation]
  return x_NT[..., None]


def pixel_permutation(size: int, seed: int) -> np.ndarray:
  """The fixed permutation of the permuted task: one draw from ``seed``, the same for every image."""
  return np.random.default_rng(seed).permutation(size * size)


def epoch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
  """The examples of the batch at ``step``: epoch e's permutation from (seed, e), no remainder."""
  per_epoch = num_examples // batch_size
  epoch, i = divmod(step, per_epoch)
  order = np.random.default_rng([seed, epoch, 0x5e9]).permutation(num_examples)
  return order[i * batch_size:(i + 1) * batch_size]


def _check(config) -> None:
  t = config.task
  if t.size not in SIZES:
    raise ValueError(f"task.size: must be one of {SIZES}, got {t.size!r}")
  check_int("task.num_valid", t.num_valid, 1, below=60000)
  check_int("task.eval_batch_size", t.eval_batch_size)
  if t.num_train < 0:
    raise ValueError(f"task.num_train: must be >= 0 (0: every training image), got {t.num_train!r}")


def build(config) -> Task:
  _check(config)
  t = config.task
  images, labels = mnist.load(t.data_dir, "train")
  test_images, test_labels = mnist.load(t.data_dir, "test")
  if t.num_valid >= len(images):
    raise ValueError(f"task.num_valid: {t.num_valid} leaves no training image of {len(images)}")
  perm = pixel_permutation(t.size, t.permutation_seed) if t.permuted else None
  x_all = pixel_sequences(images, t.size, perm)
  x_train, y_train = x_all[:-t.num_valid], labels[:-t.num_valid].astype(np.int32)
  if t.num_train:
    x_train, y_train = x_train[:t.num_train], y_train[:t.num_train]
  x_valid, y_valid = x_all[-t.num_valid:], labels[-t.num_valid:].astype(np.int32)
  x_test = pixel_sequences(test_images, t.size, perm)
  y_test = test_labels.astype(np.int32)
  if t.num_test:
    x_test, y_test = x_test[:t.num_test], y_test[:t.num_test]
  B, seed = config.batch_size, config.seed
  if B > len(x_train):
    raise ValueError(f"batch_size: {B} exceeds the {len(x_train)} training images")
  model = SequenceClassifier(**rnn_kwargs(config.model), num_outputs=10, pooling="last")
  T = t.size * t.size

  def init_params(rng):
    return model.init(rng, jnp.zeros((1, T, 1)))["params"]

  def loss_fn(params, batch, rng):
    logits_BC = model.apply({"params": params}, batch["x"], deterministic=rng is None,
                            rngs=dropout_rngs(rng))
    mask_B = batch.get("mask", jnp.ones(batch["y"].shape, bool))  # eval: padding rows masked
    return token_metrics(logits_BC[:, None], batch["y"][:, None], mask_B[:, None])

  def train_batch(step):
    idx = epoch_indices(len(x_train), B, seed, step)
    return {"x": x_train[idx], "y": y_train[idx]}

  def split_batches(x, y):
    """Fixed-size batches (one compile); the last one padded and masked."""
    E = t.eval_batch_size
    for a in range(0, len(x), E):
      xb, yb = x[a:a + E], y[a:a + E]
      pad = E - len(xb)
      yield {"x": np.concatenate([xb, np.zeros((pad,) + xb.shape[1:], xb.dtype)]),
             "y": np.concatenate([yb, np.zeros(pad, yb.dtype)]),
             "mask": np.arange(E) < len(xb)}

  evaluate = Evaluator(loss_fn)

  def report(params, step):
    metrics = evaluate(params, split_batches(x_test, y_test))
    return Report(scalars={"test_loss": metrics["loss"], "test_accuracy": metrics["accuracy"]})

  return Task(init_params=init_params, loss_fn=loss_fn, train_batch=train_batch,
              eval_batches=lambda: split_batches(x_valid, y_valid),
              num_tokens=lambda b: b["x"].shape[0] * b["x"].shape[1],
              eval_metric="accuracy", eval_mode="max", report=report)
