"""Connectionist temporal classification (Graves et al. 2006): loss, best-path and prefix beam decoding.

Shape legend: B batch, T frames, V output classes (blank included), L label
positions, K beam.

The network emits, at every frame t, a distribution y_t over the V - 1
labels and the blank (id ``BLANK`` = 0). A path pi (one class per frame)
maps to a labelling by B(pi): merge repeated classes, then drop blanks. The
loss is

    -log p(l | x) = -log sum_{pi : B(pi) = l} prod_t y_t[pi_t]

computed by optax's forward algorithm (``optax.ctc_loss``). A labelling l
needs at least |l| + r(l) frames, r(l) the number of adjacent repeated
labels (a blank must separate them); when T is shorter no path exists and
optax returns about -``log_epsilon`` = 1e5. ``ctc_loss`` never lets such a
value into a mean: it masks infeasible rows and reports their count.

Decoding: ``best_path`` takes the most likely class per frame and applies
B; ``prefix_beam_search`` keeps the K labellings (prefixes) with the highest
total probability, tracking for each the probability of ending in a blank
p_b and in a label p_nb (Graves 2012, ch. 7; Hannun et al. 2014):

    blank:            p_b(l)    += (p_b(l) + p_nb(l)) y_t[blank]
    repeat last c:    p_nb(l)   += p_nb(l) y_t[c]
    extend by c:      p_nb(l+c) += (p_b(l) + p_nb(l)) y_t[c]   (only p_b(l) y_t[c] when c = last(l))

Both run under jit with fixed shapes; outputs are padded with -1.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from recurrent import decoding
from recurrent.checks import check_int
from recurrent.layers import time_mask

Array = jax.Array
BLANK = 0
NEG_INF = -1e30


def _concrete(x) -> np.ndarray | None:
  """x as NumPy when it has values now (not under jit), else None."""
  return None if isinstance(x, jax.core.Tracer) else np.asarray(x)


def _check_ints(name: str, x, shape: tuple, hi: int, hi_name: str, lo: int = 0) -> None:
  """``x`` has ``shape``, integer dtype and (when concrete) values in [lo, hi]."""
  if tuple(jnp.shape(x)) != shape:
    raise ValueError(f"{name}: expected shape {shape}, got {tuple(jnp.shape(x))}")
  if not jnp.issubdtype(jnp.result_type(x), jnp.integer):
    raise ValueError(f"{name}: expected integers, got dtype {jnp.result_type(x)}")
  v = _concrete(x)
  if v is not None and v.size and (v.min() < lo or v.max() > hi):
    raise ValueError(f"{name}: must be in [{lo}, {hi_name}={hi}], got "
                     f"{int(v.min()) if v.min() < lo else int(v.max())}")


def check_frames(logits_BTV, lengths_B) -> None:
  """Fails naming the argument: logits [B, T, V] with V >= 2 (blank + a label), lengths [B] in [0, T]."""
  if jnp.ndim(logits_BTV) != 3 or jnp.shape(logits_BTV)[2] < 2:
    raise ValueError(f"logits_BTV: expected shape [B, T, V] with V >= 2 (blank = {BLANK} and the "
                     f"labels), got {tuple(jnp.shape(logits_BTV))}")
  B, T, _ = jnp.shape(logits_BTV)
  _check_ints("lengths_B", lengths_B, (B,), T, "T")


def check_labels(labels_BL, label_len_B, B: int, V: int) -> None:
  """Fails naming the argument: labels [B, L] with ids in [1, V) where valid, label_len [B] in [0, L]."""
  if jnp.ndim(labels_BL) != 2 or jnp.shape(labels_BL)[0] != B:
    raise ValueError(f"labels_BL: expected shape [B={B}, L], got {tuple(jnp.shape(labels_BL))}")
  if not jnp.issubdtype(jnp.result_type(labels_BL), jnp.integer):
    raise ValueError(f"labels_BL: expected integer label ids, got dtype {jnp.result_type(labels_BL)}")
  L = jnp.shape(labels_BL)[1]
  _check_ints("label_len_B", label_len_B, (B,), L, "L")
  labels, lens = _concrete(labels_BL), _concrete(label_len_B)
  if labels is not None and lens is not None and labels.size:
    valid = np.arange(L)[None, :] < lens[:, None]
    bad = valid & ((labels < 1) | (labels >= V))
    if bad.any():
      b, t = map(int, np.argwhere(bad)[0])
      raise ValueError(f"labels_BL: label ids must be in [1, V={V}) (0 is the blank), got "
                       f"{int(labels[b, t])} at row {b}, position {t}")


def min_frames(labels_BL: Array, label_len_B: Array) -> Array:
  """[B] the fewest frames that can emit each labelling: |l| plus its adjacent repeats."""
  L = labels_BL.shape[1]
  valid = time_mask(label_len_B, L)
  repeats = (labels_BL[:, 1:] == labels_BL[:, :-1]) & valid[:, 1:]
  return label_len_B + repeats.sum(1)


def ctc_loss(logits_BTV: Array, lengths_B: Array, labels_BL: Array, label_len_B: Array
             ) -> tuple[Array, Array, Array]:
  """(per-row NLL [B] (0 where masked), feasible [B] bool, rows counted [B] bool).

  Rows whose labelling cannot fit in their frames are infeasible: their loss
  is 0 and they are left out of ``counted``; rows of length 0 (padding) too.
  """
  check_frames(logits_BTV, lengths_B)
  check_labels(labels_BL, label_len_B, logits_BTV.shape[0], logits_BTV.shape[2])
  T = logits_BTV.shape[1]
  logit_pad = 1.0 - time_mask(lengths_B, T).astype(jnp.float32)
  label_pad = 1.0 - time_mask(label_len_B, labels_BL.shape[1]).astype(jnp.float32)
  nll = optax.ctc_loss(logits_BTV.astype(jnp.float32), logit_pad, labels_BL, label_pad,
                       blank_id=BLANK)
  feasible = min_frames(labels_BL, label_len_B) <= lengths_B
  counted = feasible & (lengths_B > 0)
  return jnp.where(counted, nll, 0.0), feasible, counted


def check_feasible(lengths_B, labels_BL, label_len_B, what: str = "batch") -> None:
  """Fails (host side) when a labelling needs more frames than its row has."""
  need = np.asarray(min_frames(jnp.asarray(labels_BL), jnp.asarray(label_len_B)))
  have = np.asarray(lengths_B)
  bad = np.nonzero((need > have) & (have > 0))[0]
  if bad.size:
    i = int(bad[0])
    raise ValueError(f"{what}: row {i} has {int(have[i])} frames but its {int(label_len_B[i])} "
                     f"labels need {int(need[i])} for CTC; shorten the labels or stack fewer frames")


def collapse(path_BT: Array, lengths_B: Array) -> tuple[Array, Array]:
  """B(path): merge repeats, drop blanks -> (labels [B, T] padded with -1, lengths [B])."""
  if jnp.ndim(path_BT) != 2:
    raise ValueError(f"path_BT: expected shape [B, T], got {tuple(jnp.shape(path_BT))}")
  _check_ints("lengths_B", lengths_B, jnp.shape(path_BT)[:1], jnp.shape(path_BT)[1], "T")
  T = path_BT.shape[1]
  prev = jnp.concatenate([jnp.full_like(path_BT[:, :1], -1), path_BT[:, :-1]], 1)
  keep = (path_BT != BLANK) & (path_BT != prev) & time_mask(lengths_B, T)
  pos = jnp.cumsum(keep, 1) - 1
  out = jnp.full_like(path_BT, -1)
  out = jax.vmap(lambda o, p, k, v: o.at[jnp.where(k, p, T)].set(v, mode="drop"))(
      out, pos, keep, path_BT)
  return out, keep.sum(1)


def best_path(logits_BTV: Array, lengths_B: Array) -> tuple[Array, Array]:
  """Greedy decoding: the argmax class at each frame, collapsed."""
  check_frames(logits_BTV, lengths_B)
  return collapse(decoding.argmax(logits_BTV, -1), lengths_B)


class Beam(NamedTuple):
  tokens_BKL: Array   # each prefix, padded with -1
  length_BK: Array
  logp_b_BK: Array    # log p of the prefix with the path ending in a blank
  logp_nb_BK: Array   # ... ending in its last label


def prefix_beam_search(logits_BTV: Array, lengths_B: Array, beam_size: int,
                       max_len: int | None = None) -> tuple[Array, Array, Array]:
  """(labels [B, K, max_len] padded with -1, lengths [B, K], log p(labels | x) [B, K]), best first.

  ``max_len`` bounds a prefix's length (default T). With K at least the
  number of distinct labellings of up to ``max_len`` labels the scores are
  the exact labelling probabilities.
  """
  check_frames(logits_BTV, lengths_B)
  check_int("beam_size", beam_size)
  if max_len is not None:
    check_int("max_len", max_len, note="or None: T")
  B, T, V = logits_BTV.shape
  K, L = beam_size, max_len or T
  logp_TBV = jnp.swapaxes(jax.nn.log_softmax(logits_BTV.astype(jnp.float32), -1), 0, 1)
  labels = jnp.arange(1, V)  # the V - 1 non-blank classes

  def last(beam):
    i = jnp.clip(beam.length_BK - 1, 0, L - 1)
    return jnp.where(beam.length_BK > 0,
                     jnp.take_along_axis(beam.tokens_BKL, i[..., None], -1)[..., 0], -1)

  def step(beam: Beam, inputs):
    lp_BV, t = inputs
    total_BK = jnp.logaddexp(beam.logp_b_BK, beam.logp_nb_BK)
    last_BK = last(beam)
    # Staying on the same prefix.
    stay_b = total_BK + lp_BV[:, None, BLANK]
    lp_last = jnp.take_along_axis(lp_BV, jnp.maximum(last_BK, 0), -1)
    stay_nb = jnp.where(last_BK >= 0, beam.logp_nb_BK + lp_last, NEG_INF)
    # Extending prefix k by label c: [B, K, V-1].
    c = labels[None, None, :]
    from_ = jnp.where(c == last_BK[..., None], beam.logp_b_BK[..., None], total_BK[..., None])
    ext_nb = from_ + lp_BV[:, None, 1:]
    ext_nb = jnp.where(beam.length_BK[..., None] < L, ext_nb, NEG_INF)
    # An extension l+c that equals a live prefix j of the beam adds its mass to j's p_nb.
    Lk = beam.length_BK
    pos = jnp.arange(L)
    same_prefix = jnp.all((beam.tokens_BKL[:, :, None, :] == beam.tokens_BKL[:, None, :, :])
                          | (pos[None, None, None, :] >= Lk[:, None, :, None]), -1)          # [B, j, k]: j starts with k
    parent = same_prefix & (Lk[:, :, None] == Lk[:, None, :] + 1) & (total_BK[:, :, None] > NEG_INF / 2)
    match = parent[..., None] & (last_BK[:, :, None, None] == c[:, None])  # [B, j, k, c]
    into_j = jnp.where(match, ext_nb[:, None], NEG_INF)
    stay_nb = jnp.logaddexp(stay_nb, jax.nn.logsumexp(into_j, axis=(2, 3)))
    ext_nb = jnp.where(match.any(1), NEG_INF, ext_nb)
    # Candidates: K stays, then K x (V-1) extensions; keep the K most probable.
    cand_b = jnp.concatenate([stay_b, jnp.full((B, K * (V - 1)), NEG_INF)], 1)
    cand_nb = jnp.concatenate([stay_nb, ext_nb.reshape(B, -1)], 1)
    _, top = jax.lax.top_k(jnp.logaddexp(cand_b, cand_nb), K)                # [B, K]
    src_k = jnp.where(top < K, top, (top - K) // (V - 1))
    ext_c = jnp.where(top < K, -1, (top - K) % (V - 1) + 1)
    tokens = jnp.take_along_axis(beam.tokens_BKL, src_k[..., None], 1)
    length = jnp.take_along_axis(Lk, src_k, 1)
    tokens = jnp.where((pos[None, None, :] == length[..., None]) & (ext_c[..., None] > 0), ext_c[..., None],
                       tokens)
    new = Beam(tokens, length + (ext_c > 0), jnp.take_along_axis(cand_b, top, 1),
               jnp.take_along_axis(cand_nb, top, 1))
    active = (t < lengths_B)[:, None]
    return jax.tree.map(lambda n, o: jnp.where(active[..., None] if n.ndim == 3 else active, n, o),
                        new, beam), None

  first = jnp.arange(K)[None, :] == 0
  init = Beam(jnp.full((B, K, L), -1, jnp.int32), jnp.zeros((B, K), jnp.int32),
              jnp.where(first, 0.0, NEG_INF) * jnp.ones((B, 1)), jnp.full((B, K), NEG_INF))
  beam, _ = jax.lax.scan(step, init, (logp_TBV, jnp.arange(T)))
  score = jnp.logaddexp(beam.logp_b_BK, beam.logp_nb_BK)
  order = jnp.argsort(-score, axis=1)
  tokens = jnp.take_along_axis(beam.tokens_BKL, order[..., None], 1)
  return tokens, jnp.take_along_axis(beam.length_BK, order, 1), jnp.take_along_axis(score, order, 1)


def edit_distance(ref, hyp) -> int:
  """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
  prev = list(range(len(hyp) + 1))
  for i, r in enumerate(ref, 1):
    cur = [i] + [0] * len(hyp)
    for j, h in enumerate(hyp, 1):
      cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
    prev = cur
  return prev[-1]


def error_rates(refs: list, hyps: list) -> dict:
  """{'error_rate': total edits / total reference length, 'utterance_accuracy': exact fraction}."""
  if len(refs) != len(hyps):
    raise ValueError(f"refs, hyps: expected one hypothesis per reference, got {len(refs)} "
                     f"references and {len(hyps)} hypotheses")
  edits = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
  n = sum(len(r) for r in refs)
  exact = sum(list(r) == list(h) for r, h in zip(refs, hyps))
  return {"error_rate": edits / max(n, 1), "utterance_accuracy": exact / max(len(refs), 1)}
