"""Multi-process data parallelism with real processes on 127.0.0.1 (jax.distributed, gloo on CPU).

The reference is the single-process run: 2 processes x 2 CPU devices must
train what 1 process x 4 devices trains (the same global batches, the
gradient all-reduced over the same 4 slices), and evaluate what it evaluates.
"""

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from recurrent.training import distributed, launcher, loop

from test_stream_lm import write_corpus

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/adding.py:smoke"
OVERRIDES = {"task.delay": 5, "model.cell": "rnn", "num_steps": 8, "log_every": 2,
             "eval_every": 4, "checkpoint_every": 8, "keep_checkpoints": 2,
             "task.num_eval_batches": 3}
LONG = {**OVERRIDES, "num_steps": 150, "log_every": 50, "eval_every": 150, "checkpoint_every": 10}
TIMEOUTS = ["--heartbeat_timeout=5", "--distributed_timeout=60"]
LM_CONFIG = "configs/ptb.py:smoke"  # batch 8 streams, windows of 5, LSTM 16 x 2, on a made-up corpus
LM_OVERRIDES = {"task.prompt": "the", "task.eval_streams": 4, "num_steps": 8, "log_every": 1,
                "eval_every": 8, "checkpoint_every": 8}


def env(devices: int) -> dict:
  e = dict(os.environ)
  e["XLA_FLAGS"] = f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count={devices}"  # conftest's
  return e


def train_cmd(workdir, overrides=OVERRIDES) -> list[str]:
  return [sys.executable, "-m", "experiments.train", f"--config={CONFIG}", f"--workdir={workdir}",
          *(f"--config.{k}={v}" for k, v in overrides.items())]


def run(cmd, devices: int, timeout: float = 240) -> subprocess.CompletedProcess:
  return subprocess.run(cmd, cwd=ROOT, env=env(devices), capture_output=True, text=True,
                        timeout=timeout)


def launcher_cmd(cmd, n=2, devices=2) -> list[str]:
  return [sys.executable, "-m", "recurrent.training.launcher", f"--num_processes={n}",
          f"--devices_per_process={devices}", "--", *cmd, *TIMEOUTS]


def launch(cmd, n=2, devices=2, timeout: float = 300) -> subprocess.CompletedProcess:
  return run(launcher_cmd(cmd, n, devices), devices, timeout)


def concurrently(*jobs: tuple[list[str], int], timeout: float = 300) -> list[tuple[int, str]]:
  """Runs (command, devices) jobs at the same time; (status, stdout + stderr) of each."""
  procs = [subprocess.Popen(cmd, cwd=ROOT, env=env(devices), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for cmd, devices in jobs]
  try:
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    return [(p.returncode, out) for p, out in zip(procs, outs)]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()


def start(cmd, n: int, devices: int, logdir: Path, extra=(), envs=()) -> list[subprocess.Popen]:
  """n processes of ``cmd`` with the coordinator flags (no launcher: the test watches each one)."""
  address = f"127.0.0.1:{launcher.free_port()}"
  procs = []
  for i in range(n):
    args = [*cmd, f"--coordinator_address={address}", f"--num_processes={n}", f"--process_id={i}",
            *TIMEOUTS, *(extra[i] if extra else ())]
    with open(logdir / f"process{i}.log", "w") as log:
      procs.append(subprocess.Popen(args, cwd=ROOT, env={**env(devices), **(envs[i] if envs else {})},
                                    stdout=log, stderr=subprocess.STDOUT))
  return procs


def wait_all(procs, logdir: Path, timeout: float) -> list[tuple[int, str]]:
  deadline = time.monotonic() + timeout
  try:
    for p in procs:
      p.wait(timeout=max(deadline - time.monotonic(), 1))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  return [(p.returncode, (logdir / f"process{i}.log").read_text()) for i, p in enumerate(procs)]


def final_state(workdir) -> dict:
  """The latest checkpoint read by Orbax alone (no harness code), as NumPy arrays."""
  d = Path(workdir) / "checkpoints"
  path = (d / str(max(int(p.name) for p in d.iterdir() if p.name.isdigit())) / "default").absolute()
  ckpt = ocp.PyTreeCheckpointer()
  tree = ckpt.metadata(path).item_metadata.tree
  return ckpt.restore(path, restore_args=jax.tree.map(
      lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree))


def flat(state: dict) -> np.ndarray:
  return np.concatenate([np.ravel(l) for l in jax.tree.leaves(state["params"])])


def train_records(workdir):
  lines = (Path(workdir) / "metrics.jsonl").read_text().splitlines()
  return [json.loads(l) for l in lines if l.strip()]


def assert_output_once(out: str, n: int = 2) -> None:
  """Process 0 logs and writes; the others say they started, then only errors."""
  assert out.count("done: step") == 1
  p1 = [l for l in out.splitlines() if l.startswith("[process 1]") and "Gloo" not in l]
  assert any(f"process 1/{n}" in l and "only errors are logged here" in l for l in p1), p1
  assert not any("step " in l and "loss" in l for l in p1), p1
  assert f"launch: all {n} processes finished" in out


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory):
  """A tiny stateful stream LM trained by 1 process x 4 devices and by 2 processes x 2 devices."""
  d = tmp_path_factory.mktemp("multihost_lm")
  corpus = write_corpus(d / "corpus")
  cmd = lambda w: [sys.executable, "-m", "experiments.train", f"--config={LM_CONFIG}",
                   f"--workdir={w}", f"--config.task.path={corpus}",
                   *(f"--config.{k}={v}" for k, v in LM_OVERRIDES.items())]
  t0 = time.monotonic()
  (rc1, one), (rc2, two) = concurrently((cmd(d / "one"), 4), (launcher_cmd(cmd(d / "two")), 2))
  print(f"lm_runs: 1x4 and 2x2 concurrently in {time.monotonic() - t0:.0f} s")
  assert rc1 == 0, one[-3000:]
  assert rc2 == 0, two[-3000:]
  return d, one, two


def test_two_processes_train_a_stateful_lm_like_one_process_with_four_devices(lm_runs):
  """Each process builds only its streams' rows and holds their carry; the run equals the 1x4 run."""
  d, one, two = lm_runs
  assert "data: each process builds only its rows of each batch of 8 (this one rows 0:4)" in two
  a, b = train_records(d / "one"), train_records(d / "two")
  assert [(r["step"], r["split"]) for r in a] == [(r["step"], r["split"]) for r in b]  # written once
  assert [r["step"] for r in a if r["split"] == "train"] == list(range(1, LM_OVERRIDES["num_steps"] + 1))
  for ra, rb in zip(a, b):
    for k in ("loss", "grad_norm", "param_norm", "nll", "test_nll", "tokens_per_s"):
      if k in ra and k != "tokens_per_s":
        np.testing.assert_allclose(rb[k], ra[k], rtol=1e-5, err_msg=f"{ra['split']} {k} at {ra['step']}")
  # tokens/s counts every process's rows: 8 streams x 5 tokens per step, whatever the split
  tokens = lambda rs: [r["tokens_per_s"] / r["steps_per_s"] for r in rs if r["split"] == "train"]
  np.testing.assert_allclose(tokens(b), tokens(a), rtol=1e-6)
  np.testing.assert_allclose(tokens(a), 8 * 5, rtol=1e-6)
  sa, sb = final_state(d / "one"), final_state(d / "two")
  assert int(sa["step"]) == int(sb["step"]) == LM_OVERRIDES["num_steps"]
  np.testing.assert_allclose(flat(sb), flat(sa), rtol=1e-4, atol=1e-6)
  carry = lambda s: np.concatenate([np.ravel(l) for l in jax.tree.leaves(s["carry"])])
  assert carry(sa).size == 2 * 2 * 8 * 16  # 2 layers x (h, c) x 8 streams x 16 units
  np.testing.assert_allclose(carry(sb), carry(sa), rtol=1e-4, atol=1e-6)
  assert_output_once(two)


@pytest.mark.slow
def test_a_stateful_lm_restarted_on_two_processes_resumes_to_the_uninterrupted_run(lm_runs, tmp_path):
  """Stopped at step 4 and restarted, 2x2 ends bitwise where the straight 2x2 run of the fixture ended."""
  d, _, _ = lm_runs
  cmd = lambda steps: [sys.executable, "-m", "experiments.train", f"--config={LM_CONFIG}",
                       f"--workdir={tmp_path / 'w'}", f"--config.task.path={d / 'corpus'}",
                       *(f"--config.{k}={v}" for k, v in {**LM_OVERRIDES, "num_steps": steps}.items())]
  first = launch(cmd(4))
  assert first.returncode == 0, first.stdout[-3000:]
  assert int(final_state(tmp_path / "w")["step"]) == 4
  again = launch(cmd(LM_OVERRIDES["num_steps"]))
  assert again.returncode == 0, again.stdout[-3000:]
  assert "resumed from" in again.stdout + again.stderr
  a, b = final_state(tmp_path / "w"), final_state(d / "two")
  for x, y in zip(jax.tree.leaves({"p": a["params"], "c": a["carry"], "o": a["opt_state"]}),
                  jax.tree.leaves({"p": b["params"], "c": b["carry"], "o": b["opt_state"]})):
    np.testing.assert_array_equal(x, y)


def lm_cmd_from_data_dir(workdir) -> list[str]:
  """The tiny LM with its corpus read from $RECURRENT_DATA_DIR/ptb (set per process by the test)."""
  return [sys.executable, "-m", "experiments.train", f"--config={LM_CONFIG}", f"--workdir={workdir}",
          "--config.task.path=", *(f"--config.{k}={v}" for k, v in LM_OVERRIDES.items())]


@pytest.mark.slow
def test_a_process_that_raises_stops_the_others_in_bounded_time(tmp_path):
  """Process 1's data folder lacks the corpus: it fails naming the file and exits at once; process 0,
  waiting in a collective, is stopped by the coordination service within the heartbeat timeout."""
  write_corpus(tmp_path / "data" / "ptb")
  (tmp_path / "empty").mkdir()
  envs = [{"RECURRENT_DATA_DIR": str(tmp_path / "data")}, {"RECURRENT_DATA_DIR": str(tmp_path / "empty")}]
  t0 = time.monotonic()
  procs = start(lm_cmd_from_data_dir(tmp_path / "w"), 2, 2, tmp_path, envs=envs)
  (rc0, log0), (rc1, log1) = wait_all(procs, tmp_path, timeout=120)
  took = time.monotonic() - t0
  print(f"a process that raises: both stopped {took:.0f} s after the start")
  assert rc1 == 1 and "FileNotFoundError: corpus: expected the file" in log1, log1[-3000:]
  # process 0 learns it from its collective (gloo: the peer closed the connection) or from the
  # coordination service (no heartbeats), whichever comes first
  assert rc0 != 0 and ("another process probably failed first" in log0 or "unhealthy" in log0 or
                       "stopped sending heartbeats" in log0), log0[-3000:]
  assert took < 100  # the shutdown barrier alone would hold process 1 for --distributed_timeout=60 s


@pytest.mark.slow
def test_processes_that_read_different_data_fail_saying_so(tmp_path):
  write_corpus(tmp_path / "a" / "ptb", seed=0)
  write_corpus(tmp_path / "b" / "ptb", seed=1)
  envs = [{"RECURRENT_DATA_DIR": str(tmp_path / "a")}, {"RECURRENT_DATA_DIR": str(tmp_path / "b")}]
  procs = start(lm_cmd_from_data_dir(tmp_path / "w"), 2, 2, tmp_path, envs=envs)
  results = wait_all(procs, tmp_path, timeout=180)
  assert all(rc != 0 for rc, _ in results)
  assert any("data: the processes built different batches for step 0 from the same config "
             "(process(es) [1] differ from process 0)" in log for _, log in results), results[0][1][-3000:]
  assert not (tmp_path / "w" / "checkpoints").exists() or not any((tmp_path / "w" / "checkpoints").iterdir())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The same config trained by 1 process x 4 devices and by 2 processes x 2 devices (the launcher)."""
  d = tmp_path_factory.mktemp("multihost")
  (rc1, one), (rc2, two) = concurrently((train_cmd(d / "one"), 4),
                                        (launcher_cmd(train_cmd(d / "two")), 2))
  assert rc1 == 0, one[-3000:]
  assert rc2 == 0, two[-3000:]
  return d, one, two


@pytest.mark.slow
def test_two_processes_train_and_evaluate_like_one_process_with_four_devices(reference):
  """adding draws its rows jointly from one key: every process builds the whole batch and keeps its rows."""
  d, one, two = reference
  assert "data: each process builds the whole batch and keeps its rows" in two
  a, b = train_records(d / "one"), train_records(d / "two")
  assert [(r["step"], r["split"]) for r in a] == [(r["step"], r["split"]) for r in b]  # written once
  for ra, rb in zip(a, b):
    for k in ("loss", "grad_norm", "param_norm"):
      if k in ra:
        np.testing.assert_allclose(rb[k], ra[k], rtol=1e-5, err_msg=f"{ra['split']} {k} at {ra['step']}")
  sa, sb = final_state(d / "one"), final_state(d / "two")
  assert int(sa["step"]) == int(sb["step"]) == OVERRIDES["num_steps"]
  np.testing.assert_allclose(flat(sb), flat(sa), rtol=1e-4, atol=1e-6)
  fa = json.loads((d / "one" / "final.json").read_text())
  fb = json.loads((d / "two" / "final.json").read_text())
  np.testing.assert_allclose(fb["eval"]["loss"], fa["eval"]["loss"], rtol=1e-5)
  assert_output_once(two)


@pytest.mark.slow
def test_an_evaluation_over_processes_equals_the_one_process_evaluation(reference):
  d, _, _ = reference
  one = run([sys.executable, "-m", "experiments.evaluate", f"--workdir={d / 'one'}",
             "--checkpoint=latest"], devices=4)
  assert one.returncode == 0, one.stderr[-3000:]
  written = loop.evaluation_dir(d / "one", OVERRIDES["num_steps"]) / "evaluate.json"
  expected = json.loads(written.read_text())
  written.unlink()
  two = launch([sys.executable, "-m", "experiments.evaluate", f"--workdir={d / 'one'}",
                "--checkpoint=latest"])
  assert two.returncode == 0, two.stdout[-3000:]
  got = json.loads(written.read_text())
  assert got.keys() == expected.keys() and got["step"] == expected["step"]
  np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-6)
  assert two.stdout.count("checkpoint step") == 1  # printed (and written) by process 0 only


@pytest.mark.slow
def test_sigkill_of_one_process_stops_the_others_and_a_restart_resumes(tmp_path):
  work, whole = tmp_path / "killed", tmp_path / "whole"
  reference = subprocess.Popen(launcher_cmd(train_cmd(whole, LONG)), cwd=ROOT, env=env(2),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  procs = start(train_cmd(work, LONG), 2, 2, tmp_path)
  deadline = time.monotonic() + 240
  while not [p for p in (work / "checkpoints").glob("*") if p.name.isdigit()]:
    assert all(p.poll() is None for p in procs), (tmp_path / "process0.log").read_text()[-3000:]
    assert time.monotonic() < deadline, "no checkpoint within 240 s"
    time.sleep(0.05)
  procs[1].send_signal(signal.SIGKILL)
  killed_at = time.monotonic()
  (rc0, log0), (rc1, _) = wait_all(procs, tmp_path, timeout=90)
  stopped_after = time.monotonic() - killed_at
  assert rc1 == -signal.SIGKILL
  if (work / "final.json").exists():
    pytest.fail("the run finished before the kill; raise num_steps")
  assert rc0 != 0 and stopped_after < 60, (rc0, stopped_after)
  assert "stopped sending heartbeats" in log0 or "unhealthy" in log0, log0[-3000:]
  # A restart of all processes resumes from the last complete checkpoint to the uninterrupted result.
  again = launch(train_cmd(work, LONG))
  assert again.returncode == 0, again.stdout[-3000:]
  assert "resumed from" in again.stdout + again.stderr
  out, _ = reference.communicate(timeout=300)
  assert reference.returncode == 0, out[-3000:]
  np.testing.assert_array_equal(flat(final_state(work)), flat(final_state(whole)))


@pytest.mark.slow
def test_sigkill_of_the_coordinator_stops_the_others(tmp_path):
  procs = start(train_cmd(tmp_path / "w", {**LONG, "num_steps": 3000}), 2, 2, tmp_path)
  deadline = time.monotonic() + 240
  while not [p for p in (tmp_path / "w" / "checkpoints").glob("*") if p.name.isdigit()]:
    assert all(p.poll() is None for p in procs), (tmp_path / "process0.log").read_text()[-3000:]
    assert time.monotonic() < deadline, "no checkpoint within 240 s"
    time.sleep(0.05)
  procs[0].send_signal(signal.SIGKILL)
  killed_at = time.monotonic()
  (rc0, _), (rc1, log1) = wait_all(procs, tmp_path, timeout=90)
  assert rc0 == -signal.SIGKILL
  assert rc1 != 0 and time.monotonic() - killed_at < 60
  assert "coordination service" in log1, log1[-3000:]


@pytest.mark.slow
def test_processes_with_different_configs_fail_naming_the_fields(tmp_path):
  extra = [[], ["--config.optim.learning_rate=0.5", "--config.model.cell=gru"]]
  procs = start(train_cmd(tmp_path / "w"), 2, 1, tmp_path, extra)
  results = wait_all(procs, tmp_path, timeout=180)
  for rc, log in results:
    assert rc != 0
    assert "different configs" in log and "optim.learning_rate" in log and "model.cell" in log, log[-2000:]
  assert "0.5" in results[0][1]
  assert not (tmp_path / "w" / "config.json").exists()


@pytest.mark.slow
def test_a_batch_that_does_not_divide_over_processes_and_devices_names_the_numbers(tmp_path):
  procs = start(train_cmd(tmp_path / "w", {**OVERRIDES, "batch_size": 6}), 2, 2, tmp_path)
  for rc, log in wait_all(procs, tmp_path, timeout=180):
    assert rc != 0
    assert "batch_size: 6 does not divide over 2 processes x 2 device(s) = 4 devices" in log, log[-2000:]


def test_an_unreachable_coordinator_fails_in_time_naming_the_address():
  address = f"127.0.0.1:{launcher.free_port()}"  # nothing listens there
  t0 = time.monotonic()
  with pytest.raises(ConnectionError, match=f"coordinator_address: nothing answers at {address} after 2 s"):
    distributed.initialize(address, 2, 1, timeout_s=2)
  assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("args, message", [
    (("127.0.0.1:1234", 2, 2), "process_id: must be an integer in [0, 2) (num_processes=2), got 2"),
    (("127.0.0.1:1234", 2, -1), "process_id: must be an integer in [0, 2) (num_processes=2), got -1"),
    (("127.0.0.1:1234", 2, True), "process_id: must be an integer in [0, 2) (num_processes=2), got True"),
    (("127.0.0.1:1234", 0, 0), "num_processes: must be an integer >= 1"),
    (("localhost", 2, 0), "coordinator_address: must be HOST:PORT, got 'localhost'"),
    ((None, 2, 0), "coordinator_address: required"),
])
def test_bad_topology_names_the_flag(args, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    distributed.initialize(*args)


def test_initialising_after_a_device_was_touched_fails_clearly():
  jax.devices()
  with pytest.raises(RuntimeError, match="before anything touches a device"):
    distributed.initialize("127.0.0.1:1234", 2, 0)


def test_without_flags_nothing_is_initialised(monkeypatch):
  monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
  assert distributed.initialize() is False
  assert not distributed.requested()


CHILD = r'''
import signal, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
i = int(args["process_id"])
signal.signal(signal.SIGTERM, lambda *_: (print(f"child {i} got SIGTERM", flush=True), sys.exit(143)))
if sys.argv[1] == "stuck":  # as a process blocked in a collective: its SIGTERM handler never runs
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(f"child {i} of {args['num_processes']} at {args['coordinator_address']}", flush=True)
if sys.argv[1] == "fail" and i == 1:
  sys.exit(3)
time.sleep(0 if sys.argv[1] == "ok" else 60)
'''


def launcher_run(tmp_path, mode, **kw):
  (tmp_path / "child.py").write_text(CHILD)
  return subprocess.Popen([sys.executable, "-m", "recurrent.training.launcher", "--num_processes=3",
                           "--grace=5", "--", sys.executable, str(tmp_path / "child.py"), mode],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_launcher_passes_the_topology_and_prefixes_the_others(tmp_path):
  out, _ = (p := launcher_run(tmp_path, "ok")).communicate(timeout=60)
  assert p.returncode == 0, out
  lines = out.splitlines()
  port = next(l for l in lines if l.startswith("child 0 of 3 at 127.0.0.1:")).rsplit(":", 1)[1]
  assert f"[process 1] child 1 of 3 at 127.0.0.1:{port}" in lines
  assert f"[process 2] child 2 of 3 at 127.0.0.1:{port}" in lines
  assert "launch: all 3 processes finished" in out


def test_launcher_stops_the_others_when_one_fails(tmp_path):
  t0 = time.monotonic()
  out, _ = (p := launcher_run(tmp_path, "fail")).communicate(timeout=60)
  assert p.returncode == 3, out
  assert time.monotonic() - t0 < 30  # the others would sleep 60 s
  assert "launch: process 1 exited with status 3; stopping the other 2" in out
  # each other child was stopped by the SIGTERM: it says so, or (under load, before its handler
  # was installed) the launcher reports it terminated by the signal
  statuses = re.search(r"\(statuses: ([^)]*)\)", out).group(1).split(", ")
  for i, said in ((0, "child 0 got SIGTERM"), (2, "[process 2] child 2 got SIGTERM")):
    assert said in out or statuses[i] in ("signal SIGTERM", "status 143"), out


def test_launcher_forwards_signals(tmp_path):
  p = launcher_run(tmp_path, "wait")
  try:
    deadline = time.monotonic() + 30
    seen = []
    while sum(" of 3 at " in l for l in seen) < 3 and time.monotonic() < deadline:
      seen.append(p.stdout.readline())
    p.send_signal(signal.SIGTERM)
    out = "".join(seen) + p.communicate(timeout=30)[0]
  finally:
    if p.poll() is None:
      p.kill()
  assert p.returncode == 128 + signal.SIGTERM, out
  assert all(f"child {i} got SIGTERM" in out for i in range(3)), out


def test_launcher_kills_processes_that_ignore_a_forwarded_signal(tmp_path):
  p = launcher_run(tmp_path, "stuck")
  try:
    deadline = time.monotonic() + 30
    seen = []
    while sum(" of 3 at " in l for l in seen) < 3 and time.monotonic() < deadline:
      seen.append(p.stdout.readline())
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    out = "".join(seen) + p.communicate(timeout=30)[0]
  finally:
    if p.poll() is None:
      p.kill()
  assert p.returncode == 128 + signal.SIGTERM, out
  assert 5 <= time.monotonic() - t0 < 20  # SIGKILL after --grace=5 s, not the children's 60 s sleep

