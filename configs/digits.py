"""Connected spoken digits (FSDD + background noise) with CTC or attention (issue 11).

    ./launch.sh digits                                                  # CTC, usual split
    ./launch.sh digits --config=configs/digits.py:split=speaker_theo --workdir=runs/digits_theo
    ./launch.sh digits --config=configs/digits.py:method=attention --workdir=runs/digits_attention
    python -m experiments.train --config=configs/digits.py:smoke --workdir=/tmp/digits

Data: $RECURRENT_DATA_DIR/free_spoken_digit/recordings (Free Spoken Digit
Dataset, Jakobovski/free-spoken-digit-dataset, Zohar Jackson and
contributors, CC BY-SA 4.0) and $RECURRENT_DATA_DIR/speech_commands_background_noise
(Warden 2018, CC BY 4.0), or ``--config.task.data_dir``. Each utterance is
1-7 digits joined with random gaps over noise at 5-30 dB SNR, at most 5 s.
Features: 40 log-mel bands (25 ms / 10 ms), normalised per utterance,
stacked 4 at a time (40 ms steps). Sized for 2 CPU cores: a 2-layer
bidirectional GRU of 128 per direction. Every evaluation prints the digit
error rate (best path and prefix beam for CTC, greedy and beam for
attention); the last writes ``digits_report.json``, ``samples.txt`` and a
figure.

Variants: ``method=ctc|attention``, ``split=usual|speaker_NAME`` (NAME one of
the six FSDD speakers: trained on five, tested on the sixth), ``smoke``.
"""

from configs import _seq2seq, base

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
SPLITS = ("usual",) + tuple(f"speaker_{s}" for s in SPEAKERS)


def get_config(arg=None):
  config = _seq2seq.seq2seq_config()
  config.task.name = "digits"
  config.task.method = "ctc"           # ctc | attention
  config.task.data_dir = ""            # a data folder; "" = $RECURRENT_DATA_DIR
  config.task.split = "usual"          # usual (takes 0-4 held out) | speaker=NAME (held out)
  config.task.max_seconds = 5.0        # utterances are padded (or cut) to this length
  config.task.min_digits = 1           # digits per utterance, uniform in [min, max]
  config.task.max_digits = 7
  config.task.max_gap_s = 0.3          # silence before, between and after digits, uniform in [0, max]
  config.task.snr_min = 5.0            # dB of speech over noise, uniform in [min, max]
  config.task.snr_max = 30.0
  config.task.num_test = 500           # fixed held-out utterances
  config.task.n_mels = 40              # log-mel bands
  config.task.stack_frames = 4         # frames side by side: T / 4 encoder steps (40 ms)
  config.task.time_masks = 2           # SpecAugment in training: time stripes ...
  config.task.max_time_mask = 10       # ... of up to this many 10 ms frames
  config.task.freq_masks = 2           # ... and frequency stripes
  config.task.max_freq_mask = 6        # ... of up to this many bands
  config.task.beam_size = 8            # CTC prefix beam search

  config.model.cell = "gru"
  config.model.hidden_sizes = (128, 128)
  config.model.bidirectional = True
  config.model.dropout = 0.1
  # Attention only (the seq2seq fields): a small decoder over 11 digits + EOS.
  config.model.embed_size = 128        # frames are projected to this size
  config.model.decoder_sizes = (128,)
  config.model.attn_size = 64
  config.model.output_size = 128
  config.decode.max_len = 9            # max_digits + EOS, with room
  config.decode.beam_size = 4

  config.optim.learning_rate = 2e-3
  config.optim.schedule = "warmup_cosine"
  config.optim.warmup_steps = 100
  config.optim.clip_norm = 1.0
  config.batch_size = 32
  config.num_steps = 1200
  config.log_every = 50
  config.eval_every = 400
  config.checkpoint_every = 400
  config.keep_checkpoints = 1
  config.eval_batches = 0              # the whole test set (500 utterances)
  return base.finalize(
      config, arg,
      choices={"method": base.choice_of("task.method", ("ctc", "attention")),
               "split": base.Choice(SPLITS, set_split)},
      smoke=[_seq2seq.shrink, shrink])


def set_split(config, value):
  config.task.split = value.replace("_", "=", 1) if value != "usual" else value


def shrink(config):
  config.task.num_test = 8
  config.task.max_seconds = 2.0
  config.task.max_digits = 3
  config.task.beam_size = 2
  config.decode.max_len = 5
  config.optim.warmup_steps = 1
