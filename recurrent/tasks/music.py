"""Polyphonic music modelling (Boulanger-Lewandowski et al. 2012; the cell comparison of Chung et al. 2014).

Shape legend: B batch, T time, N = 88 notes.

Each step of a piano roll is 88 binary notes, modelled as independent
Bernoulli variables given the past: h_t = RNN(x_{t-1}, h_{t-1}) (x_0 is a
silent frame) and p(x_t,n = 1 | x_<t) = sigmoid(W h_t + b)_n. The loss of a
step is its negative log-likelihood summed over the notes,

    NLL_t = - sum_n [ x_tn log p_tn + (1 - x_tn) log(1 - p_tn) ],

and the score of a split is the average of NLL_t over *all* time steps of all
its pieces (the datasets' authors' definition), which the (total, count)
metric gives exactly. Every step of a piece is predicted, the first one from
the initial state, so the counts are the split's step counts (JSB: 13,807 /
4,602 / 4,725).

The trainer evaluates the valid split; ``report`` adds train and test NLL at
the same parameters and returns ``music_prediction.png`` (a test piece and the
model's note probabilities).
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import optax

from recurrent.checks import check_int
from recurrent.data import batching
from recurrent.data.music import DATASETS, NUM_NOTES, load_piano_rolls, shift_right
from recurrent.data.paths import data_file
from recurrent.layers import time_mask
from recurrent.models import SequenceTagger, rnn_kwargs
from recurrent.tasks.base import Evaluator
from recurrent.tasks.base import Figure, Report, Task, dropout_rngs


def note_nll(logits_BTN: jax.Array, targets_BTN: jax.Array, lengths_B: jax.Array):
  """(sum of per-step NLL over valid steps, number of valid steps)."""
  nll_BT = jnp.sum(optax.sigmoid_binary_cross_entropy(logits_BTN, targets_BTN), axis=-1)
  mask_BT = time_mask(lengths_B, logits_BTN.shape[1])
  return jnp.sum(jnp.where(mask_BT, nll_BT, 0.0)), jnp.sum(mask_BT)


def crop_windows(rolls, idx, crop: int, seed: int, step: int):
  """(inputs, targets) of the pieces ``idx``: random windows of at most ``crop`` steps (whole pieces if 0).

  The inputs of a window are cut from the shifted whole piece, so a window's
  first input is the frame before it (silence only at the piece's start).
  """
  rng = np.random.default_rng([seed, step])
  inputs, targets = [], []
  for i in idx:
    r = rolls[i]
    start = int(rng.integers(0, max(len(r) - crop, 0) + 1)) if crop else 0
    stop = start + crop if crop else len(r)
    inputs.append(shift_right(r)[start:stop])
    targets.append(r[start:stop])
  return inputs, targets


def make_task(config, rolls: dict[str, list[np.ndarray]]) -> Task:
  """The task on given piano rolls {'train'|'valid'|'test': [[T_i, 88] uint8]} (tests pass made-up ones)."""
  t = config.task
  for name in ("bucket", "eval_batch_size"):
    check_int(f"task.{name}", t[name])
  model = SequenceTagger(**rnn_kwargs(config.model), num_outputs=NUM_NOTES)
  order = batching.EpochOrder(len(rolls["train"]), config.batch_size, config.seed)

  def make_batch(inputs, targets, idx):
    """Padded float32 inputs and targets of the rows ``idx`` (-1 = empty row), with lengths."""
    x, lengths = batching.pad(inputs, idx, t.bucket, dtype=np.float32)
    y, _ = batching.pad(targets, idx, t.bucket, dtype=np.float32)
    return {"inputs": x, "targets": y, "lengths": lengths}

  def train_batch(step):
    inputs, targets = crop_windows(rolls["train"], order.indices(step), t.train_crop, config.seed, step)
    return make_batch(inputs, targets, np.arange(len(inputs)))

  def split_batches(split):
    pieces = rolls[split]
    inputs = [shift_right(p) for p in pieces]
    for idx in batching.eval_index_batches(len(pieces), t.eval_batch_size, [len(p) for p in pieces]):
      yield make_batch(inputs, pieces, idx)

  def init_params(rng):
    x = jnp.zeros((1, t.bucket, NUM_NOTES), jnp.float32)
    return model.init(rng, x, jnp.ones((1,), jnp.int32))["params"]

  def loss_fn(params, batch, rng):
    rngs = dropout_rngs(rng)
    logits = model.apply({"params": params}, batch["inputs"], batch["lengths"],
                         deterministic=rng is None, rngs=rngs)
    total, count = note_nll(logits, batch["targets"], batch["lengths"])
    return total / jnp.maximum(count, 1), {"loss": (total, count)}

  evaluate = Evaluator(loss_fn)
  probs_fn = jax.jit(lambda params, x, lengths: jax.nn.sigmoid(
      model.apply({"params": params}, x, lengths)))

  def report(params, step):
    out = {f"{split}_nll": evaluate(params, split_batches(split))["loss"] for split in ("train", "test")}
    rep = Report(scalars=out)
    if t.figure:
      piece = rolls["test"][0]
      probs = np.asarray(probs_fn(params, shift_right(piece)[None].astype(np.float32),
                                  np.array([len(piece)], np.int32)))[0]
      rep.figures["music_prediction.png"] = prediction_figure(
          piece, probs, f"{t.dataset} test piece 0, step {step}: test NLL {out['test_nll']:.3f}")
    return rep

  return Task(init_params=init_params, loss_fn=loss_fn, train_batch=train_batch,
              eval_batches=lambda: split_batches("valid"),
              num_tokens=lambda batch: int(np.sum(batch["lengths"])),
              eval_metric="loss", eval_mode="min", report=report)


def prediction_figure(roll_TN: np.ndarray, probs_TN: np.ndarray, title: str) -> Figure:
  """The true piano roll over the model's note probabilities (pitch on the vertical axis)."""
  return Figure("piano_roll", {
      "rolls": [roll_TN, probs_TN], "titles": [title, ""], "title_size": None, "cmap": "magma",
      "ylabels": ["MIDI pitch\n(notes played)", "MIDI pitch\n(p(note | past))"], "crop": True,
      "colorbar": True, "sharex": True, "panel_height": 2.5})


def build(config) -> Task:
  t = config.task
  if t.dataset not in DATASETS:
    raise ValueError(f"task.dataset: must be one of {sorted(DATASETS)}, got {t.dataset!r}")
  return make_task(config, load_piano_rolls(data_file(t.data_dir, DATASETS[t.dataset])))
