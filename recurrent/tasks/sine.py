"""Next value of a sine wave from a window of 25 (seed 002): many-to-one regression.

The seed samples sin(t) at integer t: training windows come from
``sin(arange(250))`` (225 windows of 25 values, each followed by its target)
and the held-out points are the windows starting at t = 300..374 of
``sin(arange(400))``, which the training series never reaches. The model reads
a window x_BT1 with a recurrent stack (a tanh RNN of 128 units by default)
and maps the last hidden state to one number; the loss is the mean squared
error. ``report`` returns the figure ``sine_predictions.png`` (prediction vs
actual on the held-out points) for the trainer to write.

Config fields (``config.task``): ``window`` (25), ``train_size`` (250),
``test_size`` (400), ``test_start`` (300).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from recurrent.models import SequenceClassifier, rnn_kwargs
from recurrent.tasks.base import Figure, Report, Task, dropout_rngs


def windows(series: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
  """All (x [N, window, 1], y [N, 1]) pairs with y the value right after x, as in the seed."""
  n = len(series) - window
  if n < 1:
    raise ValueError(f"task.window: {window} leaves no window in a series of {len(series)} values")
  x_NT = np.stack([series[i:i + window] for i in range(n)])
  return x_NT[..., None].astype(np.float32), series[window:, None].astype(np.float32)


def epoch_batch(num_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
  """Indices of the batch at ``step``: epoch e's permutation from (seed, e), without remainder."""
  if batch_size > num_examples:
    raise ValueError(f"batch_size: {batch_size} exceeds the {num_examples} training windows")
  per_epoch = num_examples // batch_size
  epoch, i = divmod(step, per_epoch)
  perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
  return perm[i * batch_size:(i + 1) * batch_size]


def build(config) -> Task:
  t = config.task
  if t.test_start + 1 > t.test_size - t.window:
    raise ValueError(f"task.test_start: {t.test_start} leaves no held-out window in "
                     f"test_size={t.test_size} with window={t.window}")
  x_train, y_train = windows(np.sin(np.arange(t.train_size)), t.window)
  x_test, y_test = windows(np.sin(np.arange(t.test_size)), t.window)
  x_test, y_test = x_test[t.test_start:], y_test[t.test_start:]
  model = SequenceClassifier(**rnn_kwargs(config.model), num_outputs=1, pooling="last")
  batch_size, seed = config.batch_size, config.seed
  epoch_batch(len(x_train), batch_size, seed, 0)  # fails now on a batch larger than the data

  def init_params(rng):
    return model.init(rng, jnp.zeros((1, t.window, 1)))["params"]

  def predict(params, x_BT1, rng=None):
    rngs = dropout_rngs(rng)
    return model.apply({"params": params}, x_BT1, deterministic=rng is None, rngs=rngs)

  def loss_fn(params, batch, rng):
    err_B1 = predict(params, batch["x"], rng) - batch["y"]
    sse, n = jnp.sum(err_B1 ** 2), err_B1.size
    return sse / n, {"loss": (sse, n), "mse": (sse, n)}

  def train_batch(step, rows=None):  # rows: a slice of the batch (one process's share)
    idx = epoch_batch(len(x_train), batch_size, seed, step)[rows or slice(None)]
    return {"x": x_train[idx], "y": y_train[idx]}

  def eval_batches():
    for i in range(0, len(x_test), batch_size):
      yield {"x": x_test[i:i + batch_size], "y": y_test[i:i + batch_size]}

  predict_jit = jax.jit(predict)

  def report(params, step):
    pred = np.asarray(predict_jit(params, x_test))[:, 0]
    figure = Figure("lines", {
        "series": [{"y": y_test[:, 0], "label": "actual"},
                   {"y": pred, "style": "--", "label": "prediction"}],
        "xlabel": f"held-out point (window start t = {t.test_start} + i)", "ylabel": "sin(t)",
        "title": f"{config.model.cell}, step {step}: MSE {np.mean((pred - y_test[:, 0]) ** 2):.2e}"})
    return Report(scalars={"max_abs_error": float(np.max(np.abs(pred - y_test[:, 0])))},
                  figures={"sine_predictions.png": figure})

  return Task(init_params=init_params, loss_fn=loss_fn, train_batch=train_batch,
              eval_batches=eval_batches, num_tokens=lambda b: b["x"].shape[0] * b["x"].shape[1],
              eval_metric="mse", eval_mode="min", report=report)
