"""Character LM: metrics against NumPy, windows, decoding callback vs teacher forcing, sampling, report."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import char_lm as lm_config
from recurrent.data import text
from recurrent.models import LanguageModel
from recurrent.tasks import char_lm, get_task
from smoke_steps import train_steps

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


def test_lm_metrics_against_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 256)).astype(np.float32)
  targets = rng.integers(0, 256, size=(2, 5)).astype(np.int32)
  weights = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 0]], np.float32)
  loss, m = char_lm.lm_metrics(jnp.asarray(logits), {"targets": targets, "weights": weights})
  lp = numpy_log_softmax(logits)
  nll = [-lp[b, t, targets[b, t]] for b in range(2) for t in range(5) if weights[b, t]]
  np.testing.assert_allclose(loss, np.mean(nll), rtol=1e-5)
  np.testing.assert_allclose(m["bpc"][0] / m["bpc"][1], np.mean(nll) / math.log(2), rtol=1e-5)
  assert float(m["loss"][1]) == 7


def test_batches(config):
  task = get_task(config)
  b = task.train_batch(3)
  np.testing.assert_array_equal(b["inputs"][:, 1:], b["targets"][:, :-1])
  np.testing.assert_array_equal(task.train_batch(3)["inputs"], b["inputs"])
  assert b["inputs"].shape == (8, 16) and b["weights"].sum() == 8 * 16
  data = text.encode(text.ascii_typography(BOOK))
  _, held = text.split(data, 0.2)
  batches = list(task.eval_batches())
  assert {x["inputs"].shape for x in batches} == {(8, 20)}          # warmup 4 + 16 scored
  assert sum(float(x["weights"].sum()) for x in batches) == len(held) - 1
  assert task.num_tokens(batches[0]) == int(batches[0]["weights"].sum())


def test_loss_fn_is_the_models_cross_entropy(config):
  task = get_task(config)
  params = task.init_params(jax.random.key(0))
  batch = next(iter(task.eval_batches()))
  loss, _ = jax.jit(lambda p, b: task.loss_fn(p, b, None))(params, batch)
  model = LanguageModel(cell="lstm", hidden_sizes=(16,), vocab_size=256, embed_size=8)
  logits, _ = model.apply({"params": params}, batch["inputs"])
  lp = numpy_log_softmax(logits)
  w = batch["weights"]
  nll = -np.take_along_axis(lp, batch["targets"][..., None], -1)[..., 0]
  np.testing.assert_allclose(loss, (nll * w).sum() / w.sum(), rtol=1e-5)


def brute_force_greedy(model, params, prompt, n):
  """Re-reads the whole prefix with teacher forcing for every new byte (padded to one length:
  a causal model's logits at t do not depend on what follows)."""
  seq = list(prompt)
  forward = jax.jit(lambda x: model.apply({"params": params}, x)[0])
  for _ in range(n):
    x = np.zeros((1, len(prompt) + n), np.int32)
    x[0, :len(seq)] = seq
    seq.append(int(np.argmax(forward(x)[0, len(seq) - 1])))
  return seq[len(prompt):]


def test_priming_and_stepping_match_teacher_forcing_and_cold_sampling_is_greedy():
  model = LanguageModel(cell="gru", hidden_sizes=(12, 12), vocab_size=256, embed_size=6)
  prompt = jnp.asarray([list(b"Holmes")], jnp.int32)
  params = model.init(jax.random.key(0), prompt)["params"]
  params = jax.tree.map(lambda p: 4.0 * p, params)            # peaked predictions, no near-ties
  carries, last = char_lm.prime(model, params, prompt)
  step_logits, _ = char_lm.make_step_fn(model, params)(last, carries)
  full, _ = model.apply({"params": params}, prompt)
  np.testing.assert_allclose(step_logits, full[:, -1], atol=1e-5)
  want = brute_force_greedy(model, params, list(b"Holmes"), 8)
  generate = jax.jit(char_lm.generate, static_argnums=(0, 4, 5))
  assert np.asarray(generate(model, params, prompt, jax.random.key(1), 8, 0.0))[0].tolist() == want
  cold = generate(model, params, prompt, jax.random.key(1), 8, 1e-4)       # decoding.sample
  assert np.asarray(cold)[0].tolist() == want
  with pytest.raises(ValueError, match="temperature: must be >= 0"):
    char_lm.generate(model, params, prompt, jax.random.key(1), 8, temperature=-1.0)


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_sampling_follows_the_tempered_softmax(temperature):
  model = LanguageModel(cell="rnn", hidden_sizes=(8,), vocab_size=256, embed_size=4)
  N = 4000
  prompt = jnp.full((N, 2), 72, jnp.int32)
  params = model.init(jax.random.key(0), prompt[:1])["params"]
  params = jax.tree.map(lambda p: 6.0 * p, params)
  out = np.asarray(char_lm.generate(model, params, prompt, jax.random.key(3), 1, temperature))
  logits, _ = model.apply({"params": params}, prompt[:1])
  p = np.exp(numpy_log_softmax(np.asarray(logits[0, -1]) / temperature))
  freq = np.bincount(out[:, 0], minlength=256) / N
  top = np.argsort(p)[-5:]
  tol = 4 * np.sqrt(p[top] * (1 - p[top]) / N) + 1e-3       # 4 binomial standard deviations
  assert np.all(np.abs(freq[top] - p[top]) <= tol), (freq[top], p[top])
  assert p[top[-1]] > 0.05                                     # the check is not vacuous


def test_a_few_adam_steps_and_the_report(config, tmp_path):
  task = get_task(config)
  params, losses = train_steps(task, config, 40, tx=optax.adam(1e-2), deterministic=True)
  assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
  task.report(params, 40, str(tmp_path))
  samples = (tmp_path / "samples.txt").read_text(encoding="utf-8")
  assert "--- step 40, temperature 0.5\n\"Watson,\" said" in samples
  assert "--- step 40, temperature 1.0\n" in samples


def test_empty_prompt_fails(config):
  config.task.prompt = ""
  with pytest.raises(ValueError, match="task.prompt"):
    get_task(config)
  config.task.prompt = "It"
  config.task.temperatures = (0.5, -1.0)
  with pytest.raises(ValueError, match="task.temperatures"):
    get_task(config)


def test_smoke_config_trains_through_the_harness(config, tmp_path):
  from recurrent.training.loop import train_and_evaluate
  final = train_and_evaluate(config, tmp_path / "run")
  assert final["step"] == 6 and 0.0 < final["eval"]["bpc"] < 9.0
  assert (tmp_path / "run" / "samples.txt").read_text().count("--- step 6, temperature") == 2


@pytest.mark.parametrize("field, value", [
    ("task.seq_len", 0), ("task.seq_len", -1), ("task.eval_warmup", -1), ("task.sample_len", 0),
    ("model.embed_size", 0), ("task.temperatures", ())])
def test_bad_values_fail_naming_the_field(config, field, value):
  """Found by trying bad values of every field (issue 18): these failed unnamed or were accepted."""
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=field.replace(".", r"\.")):
    get_task(config)
