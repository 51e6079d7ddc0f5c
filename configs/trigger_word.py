"""Trigger-word detection on 5-10 s clips of background noise with inserted spoken digits (issue 11).

    ./launch.sh trigger_word
    python -m experiments.train --config=configs/trigger_word.py:smoke --workdir=/tmp/trigger

The trigger is one FSDD digit (``task.trigger``); the other nine digits are
negatives. Data as in configs/digits.py: $RECURRENT_DATA_DIR/free_spoken_digit
(CC BY-SA 4.0) and $RECURRENT_DATA_DIR/speech_commands_background_noise
(CC BY 4.0). Training clips use takes 5-49 and the first 80% of each noise
file; the test clips use takes 0-4 and the last 20%. The model is causal: a
convolution (kernel 15 frames, stride 2: one output every 20 ms) over 40
log-mel bands, a unidirectional GRU of 128 and a sigmoid per output frame.
The target is 1 for ``label_frames`` = 25 output frames (0.5 s) after each
trigger word ends; the seed's course uses 50 of its 1375 output steps per
10 s (0.36 s). Every evaluation prints event-level precision/recall/F1
(detections within ``tolerance_s`` of the window after each word), false
alarms per minute on pure background and the latency; the last writes
``trigger_report.json`` and ``trigger_word.png`` and checks streaming.
"""

from configs import base


def get_config(arg=None):
  config = base.base_config()
  config.task.name = "trigger_word"
  config.task.data_dir = ""            # a data folder; "" = $RECURRENT_DATA_DIR
  config.task.trigger = 7              # the digit that is the trigger word
  config.task.min_seconds = 5.0        # clip length, uniform in [min, max] ...
  config.task.max_seconds = 10.0       # ... padded to max
  config.task.max_positives = 3        # trigger words per clip, uniform in [0, max]
  config.task.max_negatives = 3        # other digits per clip, uniform in [0, max]
  config.task.snr_min = 5.0            # dB of speech over the background, uniform in [min, max]
  config.task.snr_max = 30.0
  config.task.label_frames = 25        # output frames set to 1 after a trigger word ends (0.5 s)
  config.task.min_trigger_gap_s = 1.0  # trigger-word ends at least this far apart (> label + merge gap)
  config.task.n_mels = 40
  config.task.num_test = 200           # held-out clips with words
  config.task.num_background = 60      # held-out clips of pure background (10 s each: 10 min)
  config.task.threshold = 0.5          # a detection: p >= threshold ...
  config.task.merge_gap_s = 0.3        # ... runs closer than this are one detection
  config.task.tolerance_s = 0.3        # a detection matches a word ending in [end - tol, end + label + tol]

  config.model.cell = "gru"
  config.model.hidden_sizes = (128,)   # one unidirectional GRU layer
  config.model.kernel = 15             # convolution over 15 frames (150 ms) ...
  config.model.stride = 2              # ... every 2 frames (20 ms per output)
  config.model.channels = 64
  config.model.dropout = 0.1           # on the convolution's output, in training

  config.optim.learning_rate = 2e-3
  config.optim.schedule = "warmup_cosine"
  config.optim.warmup_steps = 50
  config.optim.clip_norm = 1.0
  config.batch_size = 16
  config.num_steps = 1000
  config.log_every = 50
  config.eval_every = 250
  config.checkpoint_every = 250
  config.keep_checkpoints = 1
  config.eval_batches = 0
  return base.finalize(config, arg, smoke=[shrink])


def shrink(config):
  config.task.min_seconds = 1.0
  config.task.max_seconds = 2.0
  config.task.max_positives = 1
  config.task.max_negatives = 1
  config.task.label_frames = 5
  config.task.min_trigger_gap_s = 0.2
  config.task.num_test = 6
  config.task.num_background = 2
  config.model.channels = 8
  config.optim.warmup_steps = 1
