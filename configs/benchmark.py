"""The speed benchmark: training-step throughput and peak memory against Flax and PyTorch.

    ./launch.sh bench                                  # the default run (a few minutes)
    ./launch.sh bench --config.threads=1               # one thread per library (a shared machine)
    ./launch.sh bench --config=configs/benchmark.py:smoke    # seconds, tiny sizes
    ./launch.sh bench --config.suites='("lm",)' --config.profile=3   # + where each step's time goes

Seven suites, each in one process with the implementations interleaved:
  train     LSTM, GRU, Elman at (B, T, D, H) in ``sizes``: ours, ours_scan,
            flax (nn.RNN + LSTMCell/GRUCell/SimpleCell), flax_opt
            (OptimizedLSTMCell), torch (nn.LSTM/GRU/RNN).
  long      T = 2048: ours, ours_scan, ours_remat (checkpointed chunks), torch;
            the peak memory is the point.
  parallel  minGRU/minLSTM (associative scan) against the sequential GRU and
            against their own sequential scan, for each T in ``parallel.lengths``.
  decode    greedy decoding and beam search on a translation-sized attention
            seq2seq (tokens/s; greedy in one jitted while_loop against a
            Python loop of jitted steps).
  lm        the PTB-small word LM (Zaremba et al. 2014: embedding 200, 2-layer
            LSTM 200, vocabulary 10k, B 20, T 20, SGD, clip 5, state carried):
            the harness's stateful train step against the same model in
            PyTorch (nn.Embedding + nn.LSTM + nn.Linear, hidden state detached
            per window) from the same weights (recurrent/bench/lm.py); words/s.
  inference a word-level LSTM LM (vocabulary 10k, 2 x 256) answering online
            (B = 1, latency per token), over a batch (tokens/s), and decoding
            (greedy and beam search, tokens/s): ours against the same model, same
            weights, in PyTorch (a Python loop of steps) and Flax
            (recurrent/bench/inference.py).
  roofline  (on request) the train sizes with one matmul of the step's forward
            FLOPs as the core's practical peak; rows get gflops_per_s.
Results: a table on stdout and ``benchmark.json`` in the workdir.
"""

from __future__ import annotations

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.suites = ("train", "long", "parallel", "decode", "lm", "inference")  # also: roofline
  config.warmup = 1                  # untimed steps per implementation after compiling
  config.steps_per_rep = 1           # timed steps per implementation per repetition
  config.profile = 0                 # n > 0: after timing, profile n steps of every implementation
  # (self time per XLA operation / PyTorch operator: recurrent/profiling.py) into the log and benchmark.json
  config.threads = 0                 # 0: each library's default threading, what a user gets.
  # n > 0: the process pinned to n cores, for XLA and torch alike. On a machine shared with other jobs use 1:
  # thread pools larger than the free cores collapse (torch's OpenMP barriers ran 10-100x
  # slower at a load of 12 on 2 cores).

  config.train = ml_collections.ConfigDict()
  config.train.cells = ("lstm", "gru", "elman")
  config.train.impls = ("ours", "ours_scan", "flax", "flax_opt", "torch")  # flax_opt: LSTM only
  config.train.sizes = ((32, 100, 64, 256), (64, 200, 128, 512))  # (B, T, D, H)
  config.train.reps = (5, 3)         # interleaved repetitions, one per size

  config.long = ml_collections.ConfigDict()
  config.long.cells = ("lstm", "gru")
  config.long.impls = ("ours", "ours_scan", "ours_remat", "torch")
  config.long.size = (16, 2048, 64, 256)
  config.long.remat = 64             # steps per checkpointed chunk (about sqrt(T))
  config.long.reps = 3

  config.parallel = ml_collections.ConfigDict()
  config.parallel.cells = ("min_gru", "min_lstm")
  config.parallel.lengths = (256, 1024, 4096)
  config.parallel.batch, config.parallel.input_size, config.parallel.hidden_size = 16, 64, 256
  config.parallel.reps = 3

  config.roofline = ml_collections.ConfigDict()  # the train sizes and cells; not in the default run
  config.roofline.impls = ("ours", "flax")
  config.roofline.reps = 5

  config.decode = ml_collections.ConfigDict()
  config.decode.batch, config.decode.source_len, config.decode.max_len = 64, 15, 19
  config.decode.vocab_size = 6000    # as configs/translation.py
  config.decode.embed_size, config.decode.encoder_size, config.decode.decoder_size = 128, 128, 256
  config.decode.beam_size = 5
  config.decode.reps = 5

  config.lm = ml_collections.ConfigDict()  # configs/ptb.py:size=small on a synthetic stream
  config.lm.impls = ("ours", "torch")
  config.lm.batch, config.lm.seq_len = 20, 20
  config.lm.vocab_size, config.lm.embed_size, config.lm.hidden_size = 10_000, 200, 200
  config.lm.tokens = 929_589         # PTB's training tokens (one epoch = 2,323 windows)
  config.lm.steps_per_rep = 10       # timed windows per implementation per repetition
  config.lm.reps = 7

  config.inference = ml_collections.ConfigDict()  # recurrent/bench/inference.py
  config.inference.modes = ("stream", "batch", "greedy", "beam")
  config.inference.impls = ("ours", "torch", "flax")
  config.inference.vocab_size, config.inference.embed_size = 10_000, 256
  config.inference.hidden_size, config.inference.layers = 256, 2
  config.inference.stream_tokens = 100   # B = 1: timed tokens per implementation per repetition
  config.inference.batch = (64, 100)     # (B, T) of the batched forward pass
  config.inference.decode = (16, 50)     # (B, T) of greedy and beam search
  config.inference.beam_size = 5
  config.inference.reps = 5

  base.apply_variants(config, arg, flags={"smoke": smoke})
  config.lock()
  return config


def smoke(config):
  """Tiny sizes: seconds, for tests."""
  config.warmup = 1
  config.train.cells = ("lstm",)
  config.train.sizes = ((2, 5, 3, 4),)
  config.train.reps = (2,)
  config.long.cells = ("lstm",)
  config.long.size = (2, 12, 3, 4)
  config.long.remat = 4
  config.long.reps = 2
  config.parallel.cells = ("min_gru",)
  config.parallel.lengths = (8,)
  config.parallel.batch, config.parallel.input_size, config.parallel.hidden_size = 2, 3, 4
  config.parallel.reps = 2
  config.decode.batch, config.decode.source_len, config.decode.max_len = 2, 3, 4
  config.decode.vocab_size = 10
  config.decode.embed_size, config.decode.encoder_size, config.decode.decoder_size = 4, 3, 6
  config.decode.beam_size = 2
  config.decode.reps = 2
  config.roofline.reps = 2
  config.lm.batch, config.lm.seq_len = 2, 3
  config.lm.vocab_size, config.lm.embed_size, config.lm.hidden_size = 11, 4, 5
  config.lm.tokens = 40              # 6 windows per epoch: the smoke crosses an epoch boundary
  config.lm.steps_per_rep = 4
  config.lm.reps = 2
  config.inference.vocab_size, config.inference.embed_size = 30, 4
  config.inference.hidden_size, config.inference.layers = 6, 2
  config.inference.stream_tokens = 3
  config.inference.batch, config.inference.decode = (2, 5), (3, 4)
  config.inference.beam_size = 2
  config.inference.reps = 2
