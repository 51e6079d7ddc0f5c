"""Character LM on the stateful stream path: metrics against NumPy, streams, decoding vs teacher forcing, sampling, smoke."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import char_lm as lm_config
from recurrent.data import text
from recurrent.layers import make_stack
from recurrent.lm import StreamLM
from recurrent.tasks import _lm, get_task

BOOK = ("It was a dark night. Holmes sat by the fire. \u201cWatson,\u201d said he, \u201ccome here.\u201d\n"
        * 12)


@pytest.fixture()
def config(tmp_path):
  path = tmp_path / "book.txt"
  path.write_text(BOOK, encoding="utf-8")
  c = lm_config.get_config("smoke")
  c.task.path = str(path)
  c.task.held_out_fraction = 0.2
  c.task.prompt = '"Watson," said'
  return c


def numpy_log_softmax(logits):
  z = np.asarray(logits, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.mark.parametrize("sum_over_time", [False, True])
def test_window_loss_against_numpy(sum_over_time):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 256)).astype(np.float32)
  targets = rng.integers(0, 256, size=(2, 5)).astype(np.int32)
  weights = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 0]], np.float32)
  loss, m = _lm.window_loss(jnp.asarray(logits), {"targets": targets, "weights": weights},
                            sum_over_time, "bpc")
  lp = numpy_log_softmax(logits)
  nll = [-lp[b, t, targets[b, t]] for b in range(2) for t in range(5) if weights[b, t]]
  want = np.sum(nll) / 2 if sum_over_time else np.mean(nll)   # sum over time of the batch mean
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  np.testing.assert_allclose(m["bpc"][0] / m["bpc"][1], np.mean(nll) / math.log(2), rtol=1e-5)
  assert float(m["nll"][1]) == 7


def test_streams_of_the_book(config):
  task = get_task(config)
  data = text.encode(text.ascii_typography(BOOK))
  train, held = text.split(data, 0.2)
  L = len(train) // 8
  b3, b4 = task.train_batch(3), task.train_batch(4)
  assert b3["inputs"].shape == (8, 16) and task.num_tokens(b3) == 8 * 16
  for s in range(8):                                  # stream s is the s-th eighth of the text
    np.testing.assert_array_equal(b3["inputs"][s], train[s * L + 48:s * L + 64])
  np.testing.assert_array_equal(b4["inputs"][:, 0], b3["targets"][:, -1])  # windows continue
  batches = list(task.eval_batches())
  assert sum(float(x["weights"].sum()) for x in batches) == len(held) - 1  # every byte once
  flat = np.concatenate([x["targets"][0] for x in batches])[:len(held) - 1]
  np.testing.assert_array_equal(flat, held[1:])      # one stream, in order


def model_and_params(cell, hidden, embed, scale):
  model = StreamLM(make_stack(cell, embed, hidden), vocab_size=256)
  params = jax.tree.map(lambda p: scale * p, model.init(jax.random.key(0)))  # peaked, no near-ties
  return model, params


def brute_force_greedy(model, params, prompt, n):
  """Re-reads the whole prefix with teacher forcing for every new byte."""
  seq = list(prompt)
  for _ in range(n):
    logits, _ = model.apply(params, jnp.asarray([seq], jnp.int32))
    seq.append(int(np.argmax(logits[0, -1])))
  return seq[len(prompt):]


def test_stepping_matches_teacher_forcing_and_cold_sampling_is_greedy():
  model, params = model_and_params("gru", (12, 12), 6, 4.0)
  prompt = np.frombuffer(b"Holmes", np.uint8).astype(np.int32)
  carries = model.initial_carries(1)
  _, carries = model.apply(params, jnp.asarray(prompt[None, :-1]), carries)
  step_logits, _ = model.step(params, jnp.asarray(prompt[-1:]), carries)
  full, _ = model.apply(params, jnp.asarray(prompt[None]))
  np.testing.assert_allclose(step_logits, full[:, -1], atol=1e-5)
  want = brute_force_greedy(model, params, prompt.tolist(), 8)
  gen = jax.jit(_lm.generate, static_argnums=(0, 4, 5))
  assert np.asarray(gen(model, params, prompt, jax.random.key(1), 8, 0.0)).tolist() == want
  cold = gen(model, params, prompt, jax.random.key(1), 8, 1e-4)       # decoding.sample
  assert np.asarray(cold).tolist() == want


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_sampling_follows_the_tempered_softmax(temperature):
  model, params = model_and_params("rnn", (8,), 4, 6.0)
  N = 4000
  prompt = np.array([72, 72], np.int32)
  keys = jax.random.split(jax.random.key(3), N)
  out = np.asarray(jax.vmap(lambda k: _lm.generate(model, params, prompt, k, 1, temperature))(keys))
  logits, _ = model.apply(params, jnp.asarray(prompt[None]))
  p = np.exp(numpy_log_softmax(np.asarray(logits[0, -1]) / temperature))
  freq = np.bincount(out[:, 0], minlength=256) / N
  top = np.argsort(p)[-5:]
  tol = 4 * np.sqrt(p[top] * (1 - p[top]) / N) + 1e-3       # 4 binomial standard deviations
  assert np.all(np.abs(freq[top] - p[top]) <= tol), (freq[top], p[top])
  assert p[top[-1]] > 0.05                                     # the check is not vacuous


def test_bad_prompt_and_temperatures_fail(config):
  config.task.prompt = ""
  with pytest.raises(ValueError, match="task.prompt"):
    get_task(config)
  config.task.prompt = "It"
  config.task.temperatures = (0.5, -1.0)
  with pytest.raises(ValueError, match="task.temperatures"):
    get_task(config)


def test_smoke_config_trains_through_the_harness(config, tmp_path):
  from recurrent.training.loop import train_and_evaluate
  config.num_steps = 40
  config.eval_every = 20
  config.eval_batches = 0
  config.optim.learning_rate = 1e-2
  final = train_and_evaluate(config, tmp_path / "run")
  assert final["step"] == 40 and 0.0 < final["eval"]["bpc"] < 5.0   # uniform over bytes: 8
  np.testing.assert_allclose(final["eval"]["bpc"], final["eval"]["nll"] / math.log(2), rtol=1e-6)
  samples = (tmp_path / "run" / "samples.txt").read_text(encoding="utf-8")
  assert samples.count("--- step 40, temperature") == 2
  assert "--- step 40, temperature 0.5\n\"Watson,\" said" in samples
