"""Stateful truncated BPTT: the stream batcher, the carried train step and evaluation, resume, bad input.

The references are independent of the library's recurrence: NumPy loops over
the token stream, and a language model written out gate by gate from the LSTM
equations (float64 NumPy for values, a jnp copy of the same loop for gradients).
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import ptb as ptb_config
from recurrent.data import stream
from recurrent.tasks import get_task
from recurrent.tasks._lm import window_loss
from recurrent.tasks.base import Evaluator
from recurrent.training import loop, parallel
from recurrent.training import state as state_lib
from recurrent.training.checkpoint import Checkpoints

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the a cat dog sat ran on under mat rug and then it was big small red".split()


def write_corpus(folder: Path, n_train: int = 528, n_valid: int = 90, n_test: int = 70, seed=0):
  """A PTB-like folder: lines of words from WORDS (every word in train), <eos> added by the reader."""
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)

  def lines(n_tokens, first=()):
    words, out, count = list(first), [], 0
    while count < n_tokens:                    # each line: its words plus one <eos>
      k = int(min(rng.integers(3, 8), max(n_tokens - count - 1 - len(words), 1)))
      words += [WORDS[(int(rng.integers(0, 4)) * 3 + i) % len(WORDS)] for i in range(k)]
      out.append(" ".join(words))
      count += len(words) + 1
      words = []
    return "\n".join(out) + "\n"

  (folder / "ptb.train.txt").write_text(lines(n_train, WORDS))
  (folder / "ptb.valid.txt").write_text(lines(n_valid))
  (folder / "ptb.test.txt").write_text(lines(n_test))
  return folder


def config_for(folder, **overrides):
  c = ptb_config.get_config("smoke")
  c.task.path = str(folder)
  c.task.prompt = "the cat"
  for k, v in overrides.items():
    node = c
    *parents, name = k.split(".")
    for p in parents:
      node = node[p]
    node[name] = v
  return c


@pytest.fixture()
def corpus(tmp_path):
  return write_corpus(tmp_path / "corpus")


# ---------------------------------------------------------------- the stream batcher



def trainer_evaluator(task, num_devices, max_batches):
  """``params -> metrics`` of the held-out split as the trainer evaluates it."""
  mesh = parallel.make_mesh(num_devices)
  evaluator = Evaluator.for_task(task, place=lambda b: parallel.place_eval_batch(b, mesh),
                                 max_batches=max_batches)
  return lambda params: evaluator(params, task.eval_batches())

def test_train_windows_against_a_numpy_reference():
  ids = np.arange(1000, 1000 + 103)            # N = 103 tokens, each id names its position
  B, T = 4, 6
  ids_BL = stream.streams(ids, B)
  L = 103 // B                                  # 25 per stream, 3 dropped
  W = (L - 1) // T                              # 4 windows
  assert ids_BL.shape == (B, L) and stream.windows_per_epoch(ids_BL, T) == W
  seen = []
  for step in range(3 * W):
    b = stream.train_window(ids_BL, step, T)
    k = step % W
    for s in range(B):                           # the reference: stream s is ids[s L : (s + 1) L]
      start = s * L + k * T
      np.testing.assert_array_equal(b["inputs"][s], ids[start:start + T])
      np.testing.assert_array_equal(b["targets"][s], ids[start + 1:start + T + 1])
    assert bool(b["reset"]) == (k == 0)
    if step >= W:                               # a later epoch reads the same windows again
      np.testing.assert_array_equal(b["inputs"], stream.train_window(ids_BL, step - W, T)["inputs"])
    if k > 0:                                   # window k continues window k - 1 in every stream
      prev = stream.train_window(ids_BL, step - 1, T)
      np.testing.assert_array_equal(b["inputs"][:, 0], prev["targets"][:, -1])
    if step < W:
      seen.extend(b["targets"].ravel().tolist())
  # one epoch predicts each of the first W T + 1 tokens of every stream but its first, once
  expected = [ids[s * L + j] for s in range(B) for j in range(1, W * T + 1)]
  assert sorted(seen) == sorted(expected) and len(set(seen)) == len(seen)


@pytest.mark.parametrize("B,T", [(1, 7), (3, 5), (4, 100)])
def test_eval_windows_score_every_token_once_in_carried_streams(B, T):
  ids = np.arange(500, 500 + 58)
  batches = list(stream.eval_windows(ids, B, T))
  x = np.concatenate([b["inputs"] for b in batches], 1)    # [B, W T]: each stream read in order
  y = np.concatenate([b["targets"] for b in batches], 1)
  w = np.concatenate([b["weights"] for b in batches], 1)
  pairs = [(int(a), int(c)) for a, c, m in zip(x.ravel(), y.ravel(), w.ravel()) if m]
  assert pairs == [(int(ids[i]), int(ids[i + 1])) for i in range(57)]  # all 57, once, in order
  for row_x, row_y, row_w in zip(x, y, w):                 # a stream's pairs are contiguous text
    n = int(row_w.sum())
    np.testing.assert_array_equal(row_x[1:n], row_y[:n - 1])
    assert row_w[:n].all() and not row_w[n:].any()


# ---------------------------------------------------------------- an independent reference LM


def sigmoid(z):
  return 1 / (1 + np.exp(-z))


def reference_lm(params, tokens_BT, carries, xp=np):
  """Embedding, the LSTM equations gate by gate (order i, f, g, o), softmax layer: (logits, carries)."""
  act = (lambda z: 1 / (1 + xp.exp(-z))) if xp is jnp else sigmoid
  x = xp.asarray(params["embed"])[tokens_BT]
  new = []
  for layer, (h, c) in zip(params["stack"], carries):
    W_x, W_h, b = (xp.asarray(layer[k]) for k in ("W_x", "W_h", "b"))
    H = W_h.shape[0]
    ys = []
    for t in range(x.shape[1]):
      z = x[:, t] @ W_x + h @ W_h + b[None, :]
      i, f, g, o = (z[:, j * H:(j + 1) * H] for j in range(4))
      c = act(f) * c + act(i) * xp.tanh(g)
      h = act(o) * xp.tanh(c)
      ys.append(h)
    x = xp.stack(ys, 1)
    new.append((h, c))
  return x @ xp.asarray(params["head"]["W"]) + xp.asarray(params["head"]["b"])[None, None, :], new


def zeros_carries(params, B, xp=np):
  return [(xp.zeros((B, l["W_h"].shape[0])), xp.zeros((B, l["W_h"].shape[0])))
          for l in params["stack"]]


def numpy_nll(logits, targets):
  z = logits - logits.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  return -np.take_along_axis(logp, targets[..., None], -1)[..., 0]


def f64(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def test_stateful_step_gradient_is_the_truncated_unroll_from_the_carry(corpus):
  config = config_for(corpus)
  task = get_task(config)
  tx = optax.sgd(1.0)                           # update = -gradient
  state0 = state_lib.init_state(task, tx, config.seed, config.batch_size)
  step = jax.jit(state_lib.make_train_step(task, tx, config.optim))
  b0, b1 = task.train_batch(0), task.train_batch(1)
  state1, _ = step(state0, b0)
  state2, _ = step(state1, b1)

  p0 = f64(state0.params)
  _, carry = reference_lm(p0, b0["inputs"], zeros_carries(p0, 8))    # the state after window 0
  for (h, c), got in zip(carry, state1.carry):
    np.testing.assert_allclose(got.h, h, atol=2e-5)
    np.testing.assert_allclose(got.c, c, atol=2e-5)

  def window1_loss(params, carries):             # sum over time of the batch mean, as the recipe
    logits, _ = reference_lm(params, b1["inputs"], carries, xp=jnp)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, b1["targets"])
    return jnp.sum(ce) / ce.shape[0]

  p1 = jax.tree.map(jnp.asarray, state1.params)
  carried = [(jnp.asarray(h, jnp.float32), jnp.asarray(c, jnp.float32)) for h, c in carry]
  want = jax.grad(window1_loss)(p1, carried)
  got = jax.tree.map(lambda a, b: a - b, state1.params, state2.params)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-6)
  # the carry matters: from zeros the gradient is another one
  cold = jax.grad(window1_loss)(p1, zeros_carries(p1, 8, jnp))
  assert max(float(jnp.max(jnp.abs(a - b))) for a, b in
             zip(jax.tree.leaves(cold), jax.tree.leaves(want))) > 1e-3
  # the epoch's first window starts from zeros again, whatever the carry
  W = stream.windows_per_epoch(stream.streams(np.zeros(528), 8), 5)
  assert bool(task.train_batch(W)["reset"]) and not bool(task.train_batch(W + 1)["reset"])


def old_train_step(task, tx, optim):
  """The single train step the loop ran before the quiet variant (every metric on every step), as it was."""
  def train_step(state, batch):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    (loss, (task_metrics, carry)), grads = jax.value_and_grad(
        lambda p: task.loss_fn(p, batch, rng, state.carry), has_aux=True)(state.params)
    carry = jax.lax.stop_gradient(carry)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
    params, opt_state, carry = (keep(params, state.params), keep(opt_state, state.opt_state),
                                keep(carry, state.carry))
    nonfinite_step = jnp.where((state.nonfinite_step < 0) & ~ok, state.step, state.nonfinite_step)
    metrics = {**state_lib.means(task_metrics), "loss": loss, "grad_norm": grad_norm,
               "grad_norm_clipped": state_lib.clipped_norm(grads, grad_norm, optim),
               "update_norm": optax.tree.norm(updates), "param_norm": optax.tree.norm(params)}
    return state_lib.TrainState(state.step + 1, params, opt_state, state.rng, nonfinite_step,
                                carry), metrics
  return train_step


@pytest.mark.slow  # three compiles of the LM step: 36 s at load 9
def test_quiet_and_logged_steps_train_bitwise_as_the_old_step_and_log_the_reference_metrics(corpus):
  """The loop's two variants (metrics logged or not), mixed, give bitwise the old step's state; the
  logged step's accuracy, nll and norms equal float64 NumPy from the parameters at that step."""
  from recurrent.training.optim import make_optimizer
  config = config_for(corpus)
  assert config.model.dropout == 0  # the reference LM has no dropout
  task = get_task(config)
  tx = make_optimizer(config.optim, config.num_steps)
  steps = {logged: jax.jit(state_lib.make_train_step(task, tx, config.optim, logged))
           for logged in (False, True)}
  old = jax.jit(old_train_step(task, tx, config.optim))
  mine = ref = state_lib.init_state(task, tx, config.seed, config.batch_size)
  for i, logged in enumerate([False, False, True, False, True]):
    before, batch = jax.tree.map(np.asarray, mine), task.train_batch(i)
    mine, got = steps[logged](mine, batch)
    ref, want = old(ref, batch)
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(ref)):
      np.testing.assert_array_equal(a, b)      # bitwise: params, optimiser state, carry
    assert float(got["loss"]) == float(want["loss"])
    if not logged:
      assert set(got) == {"loss"}
      continue
    assert set(got) == set(want)
    p0, p1 = f64(before.params), f64(mine.params)
    carry = [(np.asarray(c.h, np.float64), np.asarray(c.c, np.float64)) for c in before.carry]
    logits, _ = reference_lm(p0, batch["inputs"], carry)
    targets = batch["targets"]
    np.testing.assert_allclose(float(got["accuracy"]), np.mean(logits.argmax(-1) == targets),
                               atol=1e-7)
    np.testing.assert_allclose(float(got["nll"]), numpy_nll(logits, targets).mean(), rtol=1e-5)
    norm = lambda tree: np.sqrt(sum(np.sum(x ** 2) for x in jax.tree.leaves(tree)))
    np.testing.assert_allclose(float(got["param_norm"]), norm(p1), rtol=1e-5)
    np.testing.assert_allclose(float(got["update_norm"]),
                               norm(jax.tree.map(np.subtract, p1, p0)), rtol=1e-4)


@pytest.mark.parametrize("eval_streams", [1, 3])
def test_carried_evaluation_equals_one_long_unroll(corpus, eval_streams):
  config = config_for(corpus, **{"task.eval_streams": eval_streams, "eval_batches": 0})
  task = get_task(config)
  params = state_lib.init_state(task, optax.sgd(1.0), 3, 8).params
  got = trainer_evaluator(task, 1, 0)(params)

  valid = stream.encode(stream.read_words(corpus / "ptb.valid.txt"),
                        stream.build_vocab(stream.read_words(corpus / "ptb.train.txt")), "valid")
  P = len(valid) - 1
  L = -(-P // eval_streams)
  p = f64(params)
  nll = []
  for s in range(eval_streams):                  # each stream: one unroll from zeros over its part
    x, y = valid[s * L:min((s + 1) * L, P)], valid[s * L + 1:min((s + 1) * L, P) + 1]
    logits, _ = reference_lm(p, x[None], zeros_carries(p, 1))
    nll.extend(numpy_nll(logits[0], y))
  assert len(nll) == P
  np.testing.assert_allclose(got["nll"], np.mean(nll), rtol=1e-5)
  np.testing.assert_allclose(got["ppl"], math.exp(np.mean(nll)), rtol=1e-4)


@pytest.mark.parametrize("cell,hidden,extra", [
    ("gru", (12, 12), {}), ("rnn", (16,), {}), ("min_gru", (16, 16, 16), {"model.residual": True}),
    ("lstm", (16, 16), {"model.tie_weights": True, "model.init_scale": 0.0})])
def test_every_cell_and_stack_option_carries_its_state(corpus, cell, hidden, extra):
  """Windowed, carried evaluation = one call of the model over the whole valid split."""
  config = config_for(corpus, **{"model.cell": cell, "model.hidden_sizes": hidden,
                                 "model.embed_size": hidden[-1], "eval_batches": 0, **extra})
  task = get_task(config)
  params = state_lib.init_state(task, optax.sgd(1.0), 0, 8).params
  got = trainer_evaluator(task, 1, 0)(params)
  from recurrent.tasks._lm import make_model
  model = make_model(config.model, 18)
  words = stream.read_words(corpus / "ptb.valid.txt")
  valid = stream.encode(words, stream.build_vocab(stream.read_words(corpus / "ptb.train.txt")), "v")
  logits, _ = model.apply(params, jnp.asarray(valid[None, :-1]))
  want = numpy_nll(np.asarray(logits[0], np.float64), valid[1:]).mean()
  np.testing.assert_allclose(got["nll"], want, rtol=2e-5)


# ---------------------------------------------------------------- the harness: resume, parallel, smoke


def records(workdir, split):
  return [json.loads(l) for l in (Path(workdir) / "metrics.jsonl").read_text().splitlines()
          if json.loads(l)["split"] == split]


def final_state(config, workdir):
  setup = loop._Setup(config, Path(workdir), read_only=True)
  return setup.ckpt.restore(setup.ckpt.latest_step(), like=setup.initial_state())


def assert_states_equal(a, b):
  assert int(a.step) == int(b.step)
  for x, y in zip(jax.tree.leaves((a.params, a.opt_state, a.carry)),
                  jax.tree.leaves((b.params, b.opt_state, b.carry))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_smoke_trains_and_resumes_mid_epoch_bitwise(corpus, tmp_path):
  """13 windows per epoch; stop at step 17 (mid epoch 2), resume to 30 = 30 straight."""
  over = {"checkpoint_every": 17, "eval_every": 15, "log_every": 5}
  config = lambda n: config_for(corpus, num_steps=n, **over)
  first = loop.train_and_evaluate(config(17), tmp_path / "resumed")
  assert math.isfinite(first["eval"]["ppl"]) and "test_ppl" in first["eval"]
  state17 = final_state(config(17), tmp_path / "resumed")
  assert float(jnp.abs(state17.carry[0].h).max()) > 0          # the carry was checkpointed
  loop.train_and_evaluate(config(30), tmp_path / "resumed")
  loop.train_and_evaluate(config(30), tmp_path / "straight")
  assert_states_equal(final_state(config(30), tmp_path / "resumed"),
                      final_state(config(30), tmp_path / "straight"))
  assert (tmp_path / "straight" / "samples.txt").read_text().count("temperature 1.0") == 2
  ev = records(tmp_path / "straight", "eval")
  assert [r["step"] for r in ev] == [15, 30] and all("test_ppl" in r for r in ev)


@pytest.mark.slow  # the in-process mid-epoch resume above stays in the default suite
def test_sigkill_mid_epoch_then_restart_is_bitwise_the_uninterrupted_run(corpus, tmp_path):
  over = {"num_steps": 200, "checkpoint_every": 10, "log_every": 100, "eval_every": 100,
          "keep_checkpoints": 2, "task.path": str(corpus), "task.prompt": "the cat"}
  killed = tmp_path / "killed"
  cmd = [sys.executable, "-m", "experiments.train", "--config=configs/ptb.py:smoke",
         f"--workdir={killed}"] + [f"--config.{k}={v}" for k, v in over.items()]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
  ckpts = killed / "checkpoints"
  try:
    deadline = time.time() + 240
    while not (ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir())):
      assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
      assert time.time() < deadline, "no checkpoint within 240 s"
      time.sleep(0.05)
    time.sleep(np.random.default_rng().uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  finally:
    if proc.poll() is None:
      proc.kill()
  if (killed / "final.json").exists():
    pytest.fail("the run finished before it was killed; raise num_steps")
  resumed_from = Checkpoints(ckpts, 2, "nll", "min", read_only=True).latest_step()
  assert 0 < resumed_from < 200

  config = config_for(corpus, **{k: v for k, v in over.items() if not k.startswith("task.")})
  loop.train_and_evaluate(config, killed)
  loop.train_and_evaluate(config, tmp_path / "straight")
  assert_states_equal(final_state(config, killed), final_state(config, tmp_path / "straight"))


@pytest.mark.slow  # by default: test_multihost's stateful LM, 2 processes x 2 devices == 1 x 4
def test_streams_split_over_two_devices_match_one(corpus, tmp_path):
  """The carry is split like the batch: 2 simulated devices give the 1-device run's metrics."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
  args = ["--config=configs/ptb.py:smoke", "--config.task.path=" + str(corpus),
          "--config.task.prompt=the cat", "--config.num_steps=20", "--config.eval_every=10"]
  for name, n in (("two", 2), ("one", 1)):
    out = subprocess.run([sys.executable, "-m", "experiments.train", *args,
                          f"--workdir={tmp_path / name}", f"--config.num_devices={n}"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
  assert "mesh: 2 device(s)" not in out.stderr
  for split, key in (("train", "nll"), ("eval", "nll"), ("eval", "test_nll")):
    a, b = records(tmp_path / "two", split), records(tmp_path / "one", split)
    assert len(a) == len(b) >= 2
    np.testing.assert_allclose([r[key] for r in a], [r[key] for r in b], rtol=2e-5)


# ---------------------------------------------------------------- bad input


def test_bad_corpora_fail_naming_the_problem(tmp_path):
  tiny = write_corpus(tmp_path / "tiny", n_train=30)
  with pytest.raises(ValueError, match=r"train split: \d+ tokens is too small for 8 streams"):
    get_task(config_for(tiny))
  empty = write_corpus(tmp_path / "empty")
  (empty / "ptb.valid.txt").write_text("\n\n")
  with pytest.raises(ValueError, match="holds no tokens"):
    get_task(config_for(empty))
  oov = write_corpus(tmp_path / "oov")
  (oov / "ptb.test.txt").write_text("the cat sat on the zebra\n")
  with pytest.raises(ValueError, match=r"test split .*1 word type\(s\) are not in the vocabulary, "
                                       r"e.g. \['zebra'\]"):
    get_task(config_for(oov))
  with pytest.raises(FileNotFoundError, match="ptb.train.txt"):
    get_task(config_for(tmp_path / "nowhere"))
  with pytest.raises(ValueError, match="task.corpus: must be one of"):
    get_task(config_for(oov, **{"task.corpus": "ptb2"}))


def test_vocabulary_from_the_wrong_split_is_named():
  valid = "the cat sat <eos>".split()
  train = "the cat sat on the mat <eos>".split()
  with pytest.raises(ValueError, match="must be built from the training split"):
    stream.encode(train, stream.build_vocab(valid), "train split")


def test_steps_per_epoch_that_disagrees_with_the_data_is_named(corpus):
  config = config_for(corpus, **{"optim.schedule": "epoch_decay", "optim.steps_per_epoch": 99})
  with pytest.raises(ValueError, match=r"optim.steps_per_epoch: 99, but the training split gives 13"):
    get_task(config)


def test_perplexity_overflow_counts_as_divergence(corpus, tmp_path):
  logits = jnp.zeros((2, 3, 18)).at[..., 0].set(200.0)   # targets 1: nll = 200 > log(float32 max)
  batch = {"targets": jnp.ones((2, 3), jnp.int32), "weights": jnp.ones((2, 3))}
  loss, _ = window_loss(logits, batch, True, "bits")
  assert jnp.isinf(loss)
  with pytest.raises(FloatingPointError, match="at step 0"):
    loop.train_and_evaluate(config_for(corpus, **{"model.init_scale": 60.0}), tmp_path)


def test_config_variants_are_the_paper_section_4_1():
  small = ptb_config.get_config("size=small")
  assert (small.model.hidden_sizes, small.model.init_scale, small.task.seq_len,
          small.model.dropout, small.optim.clip_norm, small.optim.decay_rate,
          small.optim.decay_after_epochs, small.optim.steps_per_epoch, small.num_steps) == \
      ((200, 200), 0.1, 20, 0.0, 5.0, 0.5, 4, 2323, 13 * 2323)
  medium = ptb_config.get_config("size=medium")
  assert (medium.model.hidden_sizes, medium.model.init_scale, medium.task.seq_len,
          medium.model.dropout, medium.task.epochs, medium.optim.steps_per_epoch) == \
      ((650, 650), 0.05, 35, 0.5, 39, 1327)
  np.testing.assert_allclose(medium.optim.decay_rate, 1 / 1.2)
  large = ptb_config.get_config("size=large,corpus=wikitext2,tie,variational")
  assert (large.model.hidden_sizes, large.optim.clip_norm, large.model.dropout,
          large.task.corpus, large.model.tie_weights, large.model.variational) == \
      ((1500, 1500), 10.0, 0.65, "wikitext2", True, True)
  assert large.optim.steps_per_epoch == (2_088_628 // 20 - 1) // 35


def test_regularisation_options_train(corpus):
  """Tying, locked (variational) dropout and embedding dropout: a few SGD steps, finite, deterministic eval."""
  config = config_for(corpus, **{"model.tie_weights": True, "model.variational": True,
                                 "model.embed_dropout": 0.1, "model.dropout": 0.3})
  task = get_task(config)
  params = task.init_params(jax.random.key(0))
  assert "W" not in params["head"]                                  # tied: no softmax matrix
  batch = task.train_batch(0)
  carry = task.initial_carry(8)
  grad = jax.jit(jax.grad(lambda p, k: task.loss_fn(p, batch, k, carry)[0]))
  start = float(task.loss_fn(params, batch, None, carry)[0])
  for step in range(5):
    params = jax.tree.map(lambda p, g: p - 0.5 * g, params, grad(params, jax.random.key(step)))
  a = task.loss_fn(params, batch, jax.random.key(0), carry)[0]
  b = task.loss_fn(params, batch, jax.random.key(1), carry)[0]
  c = task.loss_fn(params, batch, None, carry)[0]
  assert math.isfinite(float(c)) and float(c) < start
  assert float(a) != float(b) and float(c) == float(task.loss_fn(params, batch, None, carry)[0])


def test_locked_dropout_path_keeps_the_stacks_connection_rule():
  """The per-layer (variational) path equals the stack's own apply when no unit is dropped."""
  from recurrent.layers import make_stack
  from recurrent.lm import StreamLM
  for connection in ({"highway": True}, {"residual": True}):
    rate = 1e-7   # dropout on, but (almost surely) no unit dropped: the masks are 1 / (1 - rate)
    stack = make_stack("gru", 6, (6, 6, 6), dropout=rate, **connection)
    locked = StreamLM(stack, 13, dropout=rate, variational=True)
    params = locked.init(jax.random.key(0))
    tokens = jax.random.randint(jax.random.key(1), (2, 7), 0, 13)
    got, got_carries = locked.apply(params, tokens, rng=jax.random.key(2))
    want, want_carries = StreamLM(stack, 13, dropout=rate).apply(params, tokens)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                 got_carries, want_carries)


def test_head_projection_gradients_equal_autodiff_of_the_matmul():
  """``recurrent.lm.project`` (bias folded in, backward written out) against jax.grad of h @ W + b."""
  from recurrent.lm import project
  r = np.random.default_rng(0)
  h, W, b = (jnp.asarray(r.normal(size=s), jnp.float32) for s in ((12, 5), (5, 9), (9,)))
  R = jnp.asarray(r.normal(size=(12, 9)), jnp.float32)
  got = jax.grad(lambda h, W, b: jnp.sum(jnp.tanh(project(h, W, b)) * R), (0, 1, 2))(h, W, b)
  want = jax.grad(lambda h, W, b: jnp.sum(jnp.tanh(h @ W + b[None]) * R), (0, 1, 2))(h, W, b)
  np.testing.assert_allclose(project(h, W, b), np.asarray(h) @ np.asarray(W) + np.asarray(b),
                             rtol=1e-5, atol=1e-6)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
  E = jnp.asarray(r.normal(size=(9, 5)), jnp.float32)          # tied: W = E^T
  got = jax.grad(lambda E: jnp.sum(jnp.tanh(project(h, E.T, b)) * R))(E)
  want = jax.grad(lambda E: jnp.sum(jnp.tanh(h @ E.T + b[None]) * R))(E)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
