"""Fixed vectors as features: nearest neighbours by cosine and a linear probe (seed 003, sentence encodings).

Shape legend: N reference rows (the training set), Q queries, H feature size,
K neighbours, C classes.

    cos(q, x) = q . x / (|q| |x|)                    (a zero vector has cosine 0 with everything)
    kNN:   y^(q) = the most frequent label among the K rows x of largest cos(q, x) (ties: the smaller label)
    probe: p(c | x) = softmax(((x - mu) / sd) W + b)_c,  W, b minimising the mean cross-entropy
           + l2 / 2 * |W|^2 on frozen features (mu, sd: per-feature statistics of the training rows)

The probe is logistic regression trained full-batch with L-BFGS (optax.lbfgs);
``l2`` is picked on a held-out split from a small grid.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _check_2d(name: str, x) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{name}: expected a [rows, H] array, got shape {x.shape}")
  return x


def cosine_neighbours(queries_QH, keys_NH, k: int) -> tuple[np.ndarray, np.ndarray]:
  """(indices [Q, K], cosines [Q, K]) of each query's k most similar keys, most similar first."""
  q = _check_2d("queries_QH", queries_QH).astype(np.float64)
  x = _check_2d("keys_NH", keys_NH).astype(np.float64)
  if q.shape[1] != x.shape[1]:
    raise ValueError(f"keys_NH: expected H={q.shape[1]} columns like the queries, got shape {x.shape}")
  if not 1 <= k <= x.shape[0]:
    raise ValueError(f"k: must be in [1, {x.shape[0]}] (the number of keys), got {k!r}")
  qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
  xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
  sims_QN = qn @ xn.T
  idx_QK = np.argsort(-sims_QN, axis=1, kind="stable")[:, :k]
  return idx_QK, np.take_along_axis(sims_QN, idx_QK, axis=1)


def knn_predict(queries_QH, keys_NH, labels_N, k: int) -> np.ndarray:
  """The majority label of each query's k nearest keys by cosine ([Q] ints; ties go to the smaller label)."""
  labels_N = np.asarray(labels_N)
  idx_QK, _ = cosine_neighbours(queries_QH, keys_NH, k)
  votes_QC = np.zeros((idx_QK.shape[0], int(labels_N.max()) + 1), np.int64)
  np.add.at(votes_QC, (np.arange(idx_QK.shape[0])[:, None], labels_N[idx_QK]), 1)
  return np.argmax(votes_QC, axis=1)


class Probe(NamedTuple):
  """A trained linear probe: standardisation (mu, sd [H]), weights W [H, C], b [C] and its l2."""

  mu: np.ndarray
  sd: np.ndarray
  W: np.ndarray
  b: np.ndarray
  l2: float

  def logits(self, x_NH) -> np.ndarray:
    return ((np.asarray(x_NH) - self.mu) / self.sd) @ self.W + self.b

  def predict(self, x_NH) -> np.ndarray:
    return np.argmax(self.logits(x_NH), axis=1)


@functools.partial(jax.jit, static_argnames=("num_classes", "steps"))
def _fit(z_NH, y_N, l2, num_classes: int, steps: int):
  """L-BFGS on the regularised cross-entropy; one compile serves every l2 (a traced scalar)."""

  def loss(p):
    ce = optax.softmax_cross_entropy_with_integer_labels(z_NH @ p["W"] + p["b"][None, :], y_N).mean()
    return ce + 0.5 * l2 * jnp.sum(p["W"] ** 2)

  params = {"W": jnp.zeros((z_NH.shape[1], num_classes)), "b": jnp.zeros((num_classes,))}
  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def step(carry, _):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=loss)
    return (optax.apply_updates(params, updates), state), value

  (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
  return params


def fit_logistic(x_NH, y_N, num_classes: int, l2: float, steps: int = 100) -> Probe:
  """Multinomial logistic regression on standardised features, full-batch L-BFGS."""
  x = _check_2d("x_NH", x_NH).astype(np.float32)
  y = np.asarray(y_N)
  if y.shape != (x.shape[0],):
    raise ValueError(f"y_N: expected one label per row, shape ({x.shape[0]},), got {y.shape}")
  mu, sd = x.mean(0), x.std(0) + 1e-6
  params = _fit(jnp.asarray((x - mu) / sd), jnp.asarray(y), jnp.float32(l2), num_classes, steps)
  return Probe(mu, sd, np.asarray(params["W"]), np.asarray(params["b"]), float(l2))


def select_probe(train: tuple, valid: tuple, num_classes: int,
                 l2s: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1)) -> Probe:
  """The probe of ``l2s`` with the best accuracy on ``valid`` = (x, y) (ties: the smaller l2)."""
  best, best_acc = None, -1.0
  for l2 in l2s:
    probe = fit_logistic(*train, num_classes, l2)
    acc = float(np.mean(probe.predict(valid[0]) == np.asarray(valid[1])))
    if acc > best_acc:
      best, best_acc = probe, acc
  return best
