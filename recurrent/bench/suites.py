"""The benchmark's suites: which runners meet in one interleaved timing, and what is recorded.

Each suite returns a list of rows, one per (suite, cell, size, implementation):
{suite, cell, impl, B, T, D, H, tokens_per_s, ms_per_step, speedup_of_reference,
reference, peak_bytes, seconds}. Tokens are B * T per training step. With
``config.profile`` = n > 0, every row also gets ``profile``: its implementation's
busiest operations over n profiled steps (recurrent/profiling.py).
"""

from __future__ import annotations

import importlib.util
from typing import Callable

from recurrent import profiling
from recurrent.bench import impls, timing

Log = Callable[[str], None]
PROFILE_ROWS = 25  # operations kept per row in benchmark.json with config.profile


def _measure(suite: str, runners: dict[str, tuple[str, impls.Runner]], size, reference: str,
             config, reps: int, log: Log, steps_per_rep: int = 0) -> list[dict]:
  B, T, D, H = size
  seconds = timing.interleaved({k: r.step for k, (_, r) in runners.items()}, reps,
                               config.warmup, steps_per_rep or config.steps_per_rep, log)
  summary = timing.summarize(seconds, B * T, reference)
  rows = []
  for key, (cell, runner) in runners.items():
    rows.append({"suite": suite, "cell": cell, "impl": key, "B": B, "T": T, "D": D, "H": H,
                 "reference": reference, "peak_bytes": runner.peak_bytes,
                 "final_loss": runner.loss(), **summary[key]})
    if config.profile:
      ops = (profiling.torch_ops if key.startswith("torch") else profiling.jax_ops)(
          runner.step, config.profile)
      log(f"  {suite} {cell} {tuple(size)} {key}: self time per operation over {config.profile} "
          f"profiled steps (docs/PERFORMANCE.md)\n{profiling.format_ops(ops)}")
      rows[-1]["profile"] = ops[:PROFILE_ROWS]
  return rows


def available(names, log: Log) -> list[str]:
  """Drops 'torch' when PyTorch is not installed (the [bench] extra; ./launch.sh bench installs it)."""
  if "torch" in names and importlib.util.find_spec("torch") is None:
    log("torch is not installed: skipping the PyTorch rows (./launch.sh bench installs the [bench] extra)")
    return [n for n in names if n != "torch"]
  return list(names)


def train(config, log: Log) -> list[dict]:
  """LSTM, GRU, Elman at each size: ours against ours_scan, Flax and PyTorch."""
  rows = []
  for size, reps in zip(config.train.sizes, config.train.reps):
    for cell in config.train.cells:
      names = available([i for i in config.train.impls if i != "flax_opt" or cell == "lstm"], log)
      log(f"train {cell} (B, T, D, H) = {tuple(size)}: building {names}")
      runners = {i: (cell, impls.build(i, cell, *size, seed=config.seed)) for i in names}
      rows += _measure("train", runners, size, "ours", config, reps, log)
  return rows


def long(config, log: Log) -> list[dict]:
  """T = 2048: the plain scan against checkpointed chunks, for memory."""
  rows = []
  size = config.long.size
  for cell in config.long.cells:
    names = available(config.long.impls, log)
    log(f"long {cell} (B, T, D, H) = {tuple(size)}: building {names}")
    runners = {i: (cell, impls.build(i, cell, *size, seed=config.seed, remat=config.long.remat))
               for i in names}
    rows += _measure("long", runners, size, "ours", config, config.long.reps, log)
  return rows


def parallel(config, log: Log) -> list[dict]:
  """minGRU/minLSTM against the sequential GRU: ours (auto: the engine on a CPU, associative on
  accelerators), _assoc (the log-space associative scan), _seq (autodiff of the step scan)."""
  rows = []
  c = config.parallel
  for T in c.lengths:
    size = (c.batch, T, c.input_size, c.hidden_size)
    log(f"parallel (B, T, D, H) = {size}")
    runners = {"gru": ("gru", impls.ours("gru", *size, seed=config.seed)),
               "gru_scan": ("gru", impls.ours("gru", *size, seed=config.seed, impl="scan"))}
    for cell in c.cells:
      runners[cell] = (cell, impls.ours(cell, *size, seed=config.seed))
      runners[cell + "_assoc"] = (cell, impls.ours(cell, *size, seed=config.seed,
                                                   impl="associative"))
      runners[cell + "_seq"] = (cell, impls.ours(cell, *size, seed=config.seed, impl="scan"))
    rows += _measure("parallel", runners, size, c.cells[0], config, c.reps, log)
  return rows


def roofline(config, log: Log) -> list[dict]:
  """The train sizes again, with one matmul of the step's forward FLOPs as the core's peak.

  Adds ``gflops_per_s`` to each row: for ours/flax/torch the training step's
  matmul FLOPs (``impls.train_step_flops``) per second, for "gemm" the matmul's.
  """
  rows = []
  for size in config.train.sizes:
    for cell in config.train.cells:
      names = available([i for i in config.roofline.impls if i != "gemm"], log)
      log(f"roofline {cell} (B, T, D, H) = {tuple(size)}: building gemm + {names}")
      runners = {"gemm": (cell, impls.gemm(cell, *size))}
      runners.update({i: (cell, impls.build(i, cell, *size, seed=config.seed)) for i in names})
      measured = _measure("roofline", runners, size, "ours", config, config.roofline.reps, log)
      step_flops = impls.train_step_flops(cell, *size)
      for r in measured:
        flops = step_flops / 3 if r["impl"] == "gemm" else step_flops
        r["gflops_per_s"] = flops / (r["ms_per_step"] * 1e-3) / 1e9
      log("  GFLOP/s: " + ", ".join(f"{r['impl']} {r['gflops_per_s']:.1f}" for r in measured))
      rows += measured
  return rows


def decode(config, log: Log) -> list[dict]:
  """Greedy (one jitted while_loop, and a Python loop of jitted steps) and beam search."""
  from recurrent.bench import decode as decode_lib
  c = config.decode
  B, S, T, V = c.batch, c.source_len, c.max_len, c.vocab_size
  log(f"decode B={B} S={S} T={T} V={V} beam {c.beam_size}: building")
  kw = dict(embed=c.embed_size, enc=c.encoder_size, dec=c.decoder_size, seed=config.seed)
  runners = {"greedy": ("seq2seq", decode_lib.build("greedy", B, S, T, V, **kw)),
             "greedy_hostloop": ("seq2seq", decode_lib.build("greedy_hostloop", B, S, T, V, **kw)),
             f"beam{c.beam_size}": ("seq2seq", decode_lib.build("beam", B, S, T, V,
                                                                 beam_size=c.beam_size, **kw))}
  return _measure("decode", runners, (B, T, c.embed_size, c.decoder_size), "greedy", config,
                  c.reps, log)


def lm(config, log: Log) -> list[dict]:
  """The PTB-small language model's training step (recurrent.bench.lm): the harness against PyTorch.

  Rows have D = the embedding size and V (vocabulary) added; tokens/s are words/s.
  """
  from recurrent.bench import lm as lm_lib
  c = config.lm
  names = available(c.impls, log)
  log(f"lm B={c.batch} T={c.seq_len} V={c.vocab_size} E={c.embed_size} H=2x{c.hidden_size}: "
      f"building {names}")
  built = lm_lib.build(names, c.batch, c.seq_len, c.vocab_size, c.embed_size, c.hidden_size,
                       c.tokens, seed=config.seed)
  runners = {k: ("lstm", r) for k, r in built.items()}
  rows = _measure("lm", runners, (c.batch, c.seq_len, c.embed_size, c.hidden_size), "ours",
                  config, c.reps, log, steps_per_rep=c.steps_per_rep)
  for r in rows:
    r["V"] = c.vocab_size
  return rows


def inference(config, log: Log) -> list[dict]:
  """A word-level LSTM LM answering online (B = 1, per token), over a batch, and decoding:
  ours against the same model in PyTorch and Flax (recurrent.bench.inference).

  Rows: cell = the mode (stream, batch, greedy, beam<K>), D = the embedding size. stream: one
  step is one token (ms/step is the latency); greedy/beam: tokens = B * T output tokens.
  """
  from recurrent.bench import inference as inf
  c = config.inference
  names = available(c.impls, log)
  V, E, H, L = c.vocab_size, c.embed_size, c.hidden_size, c.layers
  shapes = {"stream": (1, c.stream_tokens), "batch": tuple(c.batch),
            "greedy": tuple(c.decode), "beam": tuple(c.decode)}
  rows = []
  for mode in c.modes:
    if mode not in inf.MODES:
      raise ValueError(f"inference.modes: unknown mode {mode!r}; valid modes are {inf.MODES}")
    B, T = shapes[mode]
    label = f"beam{c.beam_size}" if mode == "beam" else mode
    log(f"inference {label} V={V} E={E} H={L}x{H} B={B} T={T}: building {names}")
    runners = {i: (label, inf.build(mode, i, B, T, V, E, H, L, c.beam_size, config.seed))
               for i in names}
    size = (1, 1, E, H) if mode == "stream" else (B, T, E, H)
    rows += _measure("infer", runners, size, "ours", config, c.reps, log,
                     steps_per_rep=c.stream_tokens if mode == "stream" else 1)
  return rows


SUITES = {"train": train, "long": long, "parallel": parallel, "decode": decode,
          "roofline": roofline, "lm": lm,
          "inference": inference}


def run(config, log: Log) -> list[dict]:
  """Runs the suites named in ``config.suites``; an unknown name fails listing the valid ones."""
  for name in config.suites:
    if name not in SUITES:
      raise ValueError(f"suites: unknown suite {name!r}; valid suites are {sorted(SUITES)}")
  rows = []
  for name in config.suites:
    rows += SUITES[name](config, log)
  return rows


def table(rows: list[dict]) -> str:
  """A plain-text table; 'ref x' is how many times faster the reference ran (median ratio)."""
  head = (f"{'suite':8} {'cell':9} {'B,T,D,H':18} {'impl':15} {'tokens/s':>10} "
          f"{'ms/step':>9} {'ref':>9} {'ref x':>6} {'peak MiB':>9}")
  lines = [head, "-" * len(head)]
  for r in rows:
    size = f"{r['B']},{r['T']},{r['D']},{r['H']}"
    peak = f"{r['peak_bytes'] / 2**20:9.1f}" if r["peak_bytes"] >= 0 else f"{'n/a':>9}"
    lines.append(f"{r['suite']:8} {r['cell']:9} {size:18} {r['impl']:15} "
                 f"{r['tokens_per_s']:10.0f} {r['ms_per_step']:9.1f} {r['reference']:>9} "
                 f"{r['speedup_of_reference']:6.2f} {peak}")
  return "\n".join(lines)
