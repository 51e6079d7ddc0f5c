"""The benchmark's smoke variant end to end (no timing is asserted: the machine is shared)."""

import importlib.util
import json

import jax
import jax.numpy as jnp
import pytest

from configs import benchmark as benchmark_config
from recurrent import profiling
from recurrent.bench import suites, timing


def test_interleaved_timing_rotates_and_counts():
  calls = []
  seconds = timing.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                               reps=3, warmup=1)
  assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
  assert all(len(s) == 3 for s in seconds.values())
  assert timing.median_ratio([2.0, 4.0, 9.0], [1.0, 1.0, 3.0]) == 3.0


@pytest.mark.slow
def test_smoke_benchmark_runs_every_suite(tmp_path):
  config = benchmark_config.get_config("smoke")
  rows = suites.run(config, log=lambda msg: None)
  got = {(r["suite"], r["impl"]) for r in rows}
  assert ("train", "flax") in got
  # PyTorch is the [bench] extra (./launch.sh bench); the default test install leaves it out.
  assert (("train", "torch") in got) == (importlib.util.find_spec("torch") is not None)
  assert ("long", "ours_remat") in got and ("parallel", "min_gru") in got
  assert {("decode", "greedy"), ("decode", "greedy_hostloop"), ("decode", "beam2")} <= got
  assert ("lm", "ours") in got
  if importlib.util.find_spec("torch") is not None:  # the same LM from the same weights on the same
    lm = {r["impl"]: r["final_loss"] for r in rows if r["suite"] == "lm"}  # windows: PyTorch's
    assert abs(lm["ours"] - lm["torch"]) < 1e-5, lm  # nn.LSTM agrees after 9 steps, an epoch crossed
  decoded = {r["impl"]: r["final_loss"] for r in rows if r["suite"] == "decode"}  # mean log P(y|x)
  assert abs(decoded["greedy"] - decoded["greedy_hostloop"]) < 1e-4 and decoded["greedy"] < 0
  for r in rows:
    assert r["tokens_per_s"] > 0 and len(r["seconds"]) == 2  # smoke: 2 repetitions everywhere
  json.dumps(rows)  # the binary writes them as JSON
  assert "tokens/s" in suites.table(rows)


def test_roofline_rows_carry_flop_rates_and_profiles_on_request():
  config = benchmark_config.get_config("smoke")
  config.profile = 1
  logged = []
  rows = suites.roofline(config, log=logged.append)
  assert {r["impl"] for r in rows} == {"gemm", "ours", "flax"}
  for r in rows:   # config.profile: each implementation's operations, in the row and the log
    assert r["profile"] and {"op", "ms_per_step", "calls_per_step", "share"} <= set(r["profile"][0])
  assert sum("self time per operation" in m for m in logged) == len(rows)
  (B, T, D, H), = config.train.sizes
  for r in rows:   # the LSTM step: 3 x 2 B T (D + H) 4 H FLOPs (the gemm row: the forward's third)
    flops = 2.0 * B * T * (D + H) * 4 * H * (1 if r["impl"] == "gemm" else 3)
    assert abs(r["gflops_per_s"] - flops / (r["ms_per_step"] * 1e-3) / 1e9) < 1e-9


def test_inference_suite_runs_and_the_three_models_agree():
  """Smoke (no timing asserted): every mode runs, and ours, Flax and PyTorch (same weights)
  compute the same numbers: logits, greedy and beam log-probabilities."""
  config = benchmark_config.get_config("smoke")
  rows = suites.inference(config, log=lambda msg: None)
  by_mode = {}
  for r in rows:
    by_mode.setdefault(r["cell"], {})[r["impl"]] = r["final_loss"]
    assert r["tokens_per_s"] > 0 and len(r["seconds"]) == 2
  assert set(by_mode) == {"stream", "batch", "greedy", "beam2"}
  for mode, values in by_mode.items():
    want = {"ours", "flax"} | ({"torch"} if importlib.util.find_spec("torch") else set())
    assert set(values) == want, (mode, values)
    for impl, v in values.items():
      assert abs(v - values["ours"]) < 1e-4 * max(1.0, abs(values["ours"])), (mode, values)


def test_one_thread_pins_the_process_to_one_core_for_every_library():
  import os
  import subprocess
  import sys
  if len(os.sched_getaffinity(0)) < 2:
    pytest.skip("needs 2 usable cores to tell one from all")
  code = ("import os, threading\n"
          "from experiments.benchmark import set_threads\n"
          "set_threads(1)\n"
          "seen = []\n"
          "t = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0))); t.start(); t.join()\n"
          "print(len(os.sched_getaffinity(0)), len(seen[0]), '--xla_cpu_multi_thread_eigen=false' in os.environ['XLA_FLAGS'])\n"
          "try:\n"
          "  set_threads(10**6)\n"
          "except ValueError as e:\n"
          "  print(e)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
  lines = out.splitlines()
  assert lines[0] == "1 1 True"  # the main thread and a thread started after it
  assert "threads" in lines[1] and "1000000" in lines[1]


def test_self_times_subtract_nested_events_per_thread():
  # a hand-made trace: a loop (0-100 us) holding two ops on thread 1, an op on thread 2 that
  # overlaps the loop in time but is not nested in it, and a thread that is not counted
  events = [{"ph": "X", "tid": 1, "name": "while", "ts": 0, "dur": 100},
            {"ph": "X", "tid": 1, "name": "dot", "ts": 10, "dur": 30},
            {"ph": "X", "tid": 1, "name": "tanh", "ts": 50, "dur": 20},
            {"ph": "X", "tid": 1, "name": "end: tanh", "ts": 70, "dur": 1},
            {"ph": "X", "tid": 1, "name": "dot", "ts": 120, "dur": 30},
            {"ph": "X", "tid": 2, "name": "dot", "ts": 20, "dur": 40},
            {"ph": "X", "tid": 3, "name": "python", "ts": 0, "dur": 500},
            {"ph": "X", "tid": 2, "name": "ThunkExecutor::Execute (wait for completion)", "ts": 0,
             "dur": 900}]
  self_us, calls = profiling.self_times(events, threads={1, 2})
  assert self_us == {"while": 50, "dot": 100, "tanh": 20}
  assert calls == {"while": 1, "dot": 3, "tanh": 1}


def test_jax_ops_finds_the_loop_body_once_per_iteration():
  W = jnp.eye(16) * 0.5
  f = jax.jit(lambda h: jax.lax.scan(lambda h, _: (jnp.tanh(h @ W), None), h, None, length=7)[0])
  h = jnp.ones((4, 16))
  f(h).block_until_ready()
  rows = profiling.jax_ops(lambda: f(h).block_until_ready(), steps=2)
  assert rows and all(r["calls_per_step"] > 0 for r in rows)
  # the scan's body runs 7 times per step: some operation (the dot or the tanh) is called 7 times
  assert any(r["calls_per_step"] == 7 for r in rows), profiling.format_ops(rows, top=30)
  assert "ms/step" in profiling.format_ops(rows)
