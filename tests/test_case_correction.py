"""Case correction: metrics against NumPy, the batch pipeline, a few Adam steps, the report."""


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import case_correction as case_config
from recurrent.data import text
from recurrent.models import SequenceTagger, rnn_kwargs
from recurrent.tasks import case_correction, get_task
from recurrent.training import reports
from smoke_steps import train_steps

SENTENCES = ("The cat sat on the mat. Mr. Holmes ran after it. I saw him go. "
             "\u201cWhy?\u201d said Watson. \u201cBecause,\u201d said he. ")
HELD_OUT = "0123456789 Q. " * 30   # digits only here: a training crop that leaks from here is caught


@pytest.fixture()
def book(tmp_path):
  path = tmp_path / "book.txt"
  body = SENTENCES * 30
  path.write_text(body + HELD_OUT, encoding="utf-8")
  n_held = len(HELD_OUT)
  return str(path), n_held / (len(text.ascii_typography(body).encode()) + n_held)


def smoke_config(path, fraction, arg="smoke"):
  config = case_config.get_config(arg)
  config.task.path = path
  config.task.held_out_fraction = fraction
  config.task.test_input = 'it may be so, mr. holmes," said he'
  config.task.test_target = 'It may be so, Mr. Holmes," said he'
  return config


def numpy_log_softmax(logits):
  z = np.asarray(logits, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def numpy_metrics(logits, inputs, targets, lengths):
  logp = numpy_log_softmax(logits)
  ce = total = correct = changed = changed_correct = 0.0
  for b, L in enumerate(lengths):
    for t in range(L):
      y = targets[b, t]
      ce -= logp[b, t, y]
      total += 1
      hit = np.argmax(logits[b, t]) == y
      correct += hit
      if inputs[b, t] != y:
        changed += 1
        changed_correct += hit
  return ce / total, {"loss": (ce, total), "accuracy": (correct, total),
                      "changed_accuracy": (changed_correct, changed)}


def test_case_metrics_against_numpy():
  rng = np.random.default_rng(0)
  targets = rng.choice(np.array([65, 66, 97, 98, 46]), size=(3, 6)).astype(np.int32)
  inputs = text.lowercase_ascii(targets)
  lengths = np.array([6, 2, 0], np.int32)
  logits = rng.normal(size=(3, 6, 256)).astype(np.float32)
  logits[0, :, 65] += 3.0                           # make a few predictions right
  batch = {"inputs": inputs, "targets": targets, "lengths": lengths}
  loss, metrics = case_correction.case_metrics(jnp.asarray(logits), batch)
  want_loss, want = numpy_metrics(logits, inputs, targets, lengths)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  for k, (tot, cnt) in want.items():
    np.testing.assert_allclose(metrics[k][0], tot, rtol=1e-5, err_msg=k)
    assert int(metrics[k][1]) == cnt, k


def test_batches_are_aligned_pure_and_from_their_split(book):
  path, fraction = book
  task = get_task(smoke_config(path, fraction))
  b1, b2 = task.train_batch(5), task.train_batch(5)
  for k in b1:
    np.testing.assert_array_equal(b1[k], b2[k])
  assert not np.array_equal(task.train_batch(6)["targets"], b1["targets"])
  held = set(text.encode(HELD_OUT).tolist())
  for step in range(20):
    b = task.train_batch(step)
    np.testing.assert_array_equal(b["inputs"], text.lowercase_ascii(b["targets"]))
    valid = np.arange(20)[None, :] < b["lengths"][:, None]
    assert (b["targets"][~valid] == text.PAD).all()
    assert not set(b["targets"][valid].tolist()) & (set(b"0123456789"))
  pieces = [b["targets"][i, :L] for b in task.eval_batches() for i, L in enumerate(b["lengths"])]
  assert text.decode(np.concatenate(pieces)) == HELD_OUT[-len(np.concatenate(pieces)):]
  assert set(np.concatenate(pieces).tolist()) <= held
  shapes = {b["inputs"].shape for b in task.eval_batches()}
  assert shapes == {(8, 20)}                          # a static shape, the last batch padded with empty rows


def test_loss_fn_is_the_models_masked_cross_entropy(book):
  path, fraction = book
  config = smoke_config(path, fraction, "smoke,cell=gru,bidirectional")
  task = get_task(config)
  params = task.init_params(jax.random.key(0))
  batch = task.train_batch(0)
  loss_fn = jax.jit(lambda p, b: task.loss_fn(p, b, None))
  loss, metrics = loss_fn(params, batch)
  model = SequenceTagger(**rnn_kwargs(config.model), num_outputs=256)
  logits = jax.jit(model.apply)({"params": params}, jax.nn.one_hot(batch["inputs"], 256),
                                batch["lengths"])
  want_loss, want = numpy_metrics(logits, batch["inputs"], batch["targets"], batch["lengths"])
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["changed_accuracy"][1], want["changed_accuracy"][1])
  # padding content does not matter
  garbage = dict(batch, inputs=np.where(batch["inputs"] == 0, 120, batch["inputs"]))
  np.testing.assert_allclose(loss_fn(params, garbage)[0], loss, rtol=1e-6)


def test_a_few_adam_steps_lower_the_loss(book):
  path, fraction = book
  config = smoke_config(path, fraction, "smoke,cell=lstm")
  task = get_task(config)
  params, losses = train_steps(task, config, 40, tx=optax.adam(1e-2), deterministic=True)
  assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses


def test_report_logs_the_fixed_sentence(book, tmp_path):
  path, fraction = book
  task = get_task(smoke_config(path, fraction))
  params = task.init_params(jax.random.key(0))
  reports.write(task.report(params, 3), tmp_path)
  out = task.report(params, 6)
  reports.write(out, tmp_path)
  out = out.scalars
  lines = (tmp_path / "fixed_sentence.txt").read_text(encoding="utf-8").splitlines()
  assert lines[0] == 'input  it may be so, mr. holmes," said he' and len(lines) == 4
  assert lines[3].startswith("epoch ") and " step      6: " in lines[3]
  assert 0.0 <= out["test_sentence_accuracy"] <= 1.0 and out["epoch"] > 0


def test_bad_settings_fail_naming_the_field(book, tmp_path):
  path, fraction = book
  config = smoke_config(path, fraction)
  config.task.test_target = "It may be so, Mr. Holmes, said he"
  with pytest.raises(ValueError, match="task.test_input"):   # at build, not at the first report
    get_task(config)
  config.task.architecture = "transformer"
  with pytest.raises(ValueError, match="task.architecture"):
    get_task(config)
  config = smoke_config(str(tmp_path / "missing.txt"), fraction)
  with pytest.raises(FileNotFoundError, match="missing.txt"):
    get_task(config)
  with pytest.raises(ValueError, match="unknown variant 'bidi'"):
    case_config.get_config("bidi")
  with pytest.raises(ValueError, match="cell must be one of"):
    case_config.get_config("cell=mlp")


def test_config_variants():
  c = case_config.get_config("cell=gru,bidirectional")
  assert c.model.cell == "gru" and c.model.bidirectional and c.num_steps == 2880
  assert c.eval_every == 288 and c.model.hidden_sizes == (32,)
  sweep = case_config.get_sweep()
  assert set(sweep["model.cell"]) == {"rnn", "gru", "lstm"}


def test_smoke_config_trains_through_the_harness(book, tmp_path):
  from recurrent.training.loop import train_and_evaluate
  path, fraction = book
  final = train_and_evaluate(smoke_config(path, fraction, "smoke,bidirectional"), tmp_path / "run")
  assert final["step"] == 6 and 0.0 <= final["eval"]["accuracy"] <= 1.0
  assert {"changed_accuracy", "test_sentence_accuracy", "epoch"} <= set(final["eval"])
  assert len((tmp_path / "run" / "fixed_sentence.txt").read_text().splitlines()) == 2 + 2



# -- the encoder-decoder variant (seed 004's revisited task) ------------------------------------

def test_seq2seq_batch_tokens_are_bytes_plus_three():
  targets = np.array([[65, 98, 0], [99, 0, 0], [0, 0, 0]], np.int32)       # "Ab", "c", empty
  batch = {"inputs": text.lowercase_ascii(targets), "targets": targets,
           "lengths": np.array([2, 1, 0], np.int32)}
  b = case_correction.seq2seq_batch(batch)
  np.testing.assert_array_equal(b["src"], [[100, 101, 0], [102, 0, 0], [0, 0, 0]])
  np.testing.assert_array_equal(b["tgt_in"], [[1, 68, 101, 0], [1, 102, 0, 0], [1, 0, 0, 0]])
  np.testing.assert_array_equal(b["tgt_out"], [[68, 101, 2, 0], [102, 2, 0, 0], [2, 0, 0, 0]])
  np.testing.assert_array_equal(b["tgt_len"], [3, 2, 0])


def test_decoded_metrics_against_hand_counts():
  targets = np.array([[65, 98, 67], [100, 69, 0], [0, 0, 0]], np.int32)   # "AbC", "dE", empty
  batch = {"inputs": text.lowercase_ascii(targets), "targets": targets,
           "lengths": np.array([3, 2, 0], np.int32)}
  tokens = np.array([[68, 101, 70, 2],                # all right, then EOS: an exact match
                     [103, 2, 0, 0],                  # "d" right, then an early EOS
                     [5, 6, 7, 8]], np.int32)         # an empty row counts for nothing
  m = case_correction.decoded_metrics(jnp.asarray(tokens), batch)
  got = {k: (int(t), int(c)) for k, (t, c) in m.items()}
  assert got == {"accuracy": (4, 5), "changed_accuracy": (2, 3), "exact_match": (1, 2)}
  tokens[0, 3] = 70                                   # no EOS after the bytes: not an exact match
  assert int(case_correction.decoded_metrics(jnp.asarray(tokens), batch)["exact_match"][0]) == 0


def test_encoder_decoder_loss_and_greedy_decoding_against_brute_force(book):
  path, fraction = book
  config = smoke_config(path, fraction, "smoke,encoder_decoder,cell=gru")
  task = get_task(config)
  params = jax.tree.map(lambda p: 3.0 * p, task.init_params(jax.random.key(0)))  # peaked outputs
  batch = next(iter(task.eval_batches()))
  loss, metrics = jax.jit(lambda p, b: task.loss_fn(p, b, None))(params, batch)
  # the teacher-forced loss, by hand from the model's logits: tokens = bytes + 3, then EOS (2)
  from recurrent.tasks import _seq2seq
  model = _seq2seq.build_model(config, 259, 259)
  B, T = batch["targets"].shape
  L = batch["lengths"]
  src = np.where(np.arange(T)[None, :] < L[:, None], batch["inputs"] + 3, 0)
  tgt_in = np.zeros((B, T + 1), np.int32)
  tgt_in[:, 0] = 1
  tgt_in[:, 1:] = np.where(np.arange(T)[None, :] < L[:, None], batch["targets"] + 3, 0)
  forward = jax.jit(lambda x: model.forward(params, src, np.maximum(L, 1), x)[0])
  logp = numpy_log_softmax(forward(tgt_in))
  nll = [-logp[b, t, batch["targets"][b, t] + 3 if t < L[b] else 2]
         for b in range(B) for t in range(L[b] + 1)]
  np.testing.assert_allclose(loss, np.mean(nll), rtol=1e-5)
  # greedy decoding, re-decoded by brute force: the whole prefix re-read for every new token
  seq = np.zeros((B, T + 2), np.int32)
  seq[:, 0] = 1
  for t in range(T + 1):
    nxt = np.argmax(np.asarray(forward(seq[:, :T + 1]))[:, t], -1)
    done = (seq[:, 1:t + 1] == 2).any(1)
    seq[:, t + 1] = np.where(done, 0, nxt)
  want = case_correction.decoded_metrics(jnp.asarray(seq[:, 1:]), batch)
  for k in ("accuracy", "changed_accuracy", "exact_match"):
    assert [float(x) for x in metrics[k]] == [float(x) for x in want[k]], k
  predict = case_correction.make_encoder_decoder(config)[2]
  got = np.asarray(jax.jit(predict)(params, batch["inputs"], batch["lengths"]))
  np.testing.assert_array_equal(got, np.where(seq[:, 1:] >= 3, seq[:, 1:] - 3, 0))
  assert len(np.unique(seq[:, 1:])) > 3                 # the decoded outputs are not all alike


def test_encoder_decoder_config_and_smoke_training_through_the_harness(book, tmp_path):
  from recurrent.training.loop import train_and_evaluate
  for arg in ("smoke,encoder_decoder", "encoder_decoder,smoke"):
    c = case_config.get_config(arg)
    assert c.task.architecture == "encoder_decoder" and c.model.decoder_sizes == (16,)
  c = case_config.get_config("encoder_decoder")
  assert c.model.attention == "bahdanau" and c.optim.learning_rate == 3e-3
  path, fraction = book
  final = train_and_evaluate(smoke_config(path, fraction, "smoke,encoder_decoder"), tmp_path / "run")
  assert final["step"] == 6
  assert {"accuracy", "changed_accuracy", "exact_match", "token_accuracy"} <= set(final["eval"])
  assert len((tmp_path / "run" / "fixed_sentence.txt").read_text().splitlines()) == 2 + 2
