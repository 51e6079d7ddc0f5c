"""Captioning canvases of MNIST digits with soft attention (Xu et al. 2015) or without (show and tell) (issue 19).

    ./launch.sh captioning --workdir=runs/captioning_attention
    ./launch.sh captioning --config=configs/captioning.py:attention=none --workdir=runs/captioning_none
    python -m experiments.captioning_report --workdir=runs/captioning_attention,runs/captioning_none
    python -m experiments.train --config=configs/captioning.py:smoke --workdir=/tmp/caption

Data: $RECURRENT_DATA_DIR/mnist/ (the original IDX files of MNIST, LeCun,
Cortes & Burges, CC BY-SA 3.0), or ``--config.task.data_dir``. A canvas is
2 x 2 cells of 28 px (56 x 56) holding 1-3 digits, each scaled by 0.8-1.2,
shifted within its cell and turned by up to 15 degrees; the caption names
the digits in reading order, each with its place ("seven top left three
bottom right"). Training canvases use the training digits, the 1000
held-out canvases the test digits only. Sized for 2 CPU cores: three conv
stages (16, 32, 64 channels) and a last conv give 7 x 7 regions; one LSTM of 128 decodes.
Both variants train for the same step budget; every evaluation prints BLEU
and the exact-caption accuracy on the held-out canvases (greedy), the last
also beam search, the error analysis and the attention figure.

Variants: ``attention=bahdanau|none|luong_general`` (none: the show-and-tell
baseline), ``doubly_stochastic`` (Xu et al.'s attention penalty, lambda 1),
``smoke``.
"""

from configs import _seq2seq, base


def get_config(arg=None):
  config = _seq2seq.seq2seq_config()
  config.task.name = "captioning"
  config.task.data_dir = ""            # a data folder holding mnist/; "" = $RECURRENT_DATA_DIR
  config.task.rows = 2                 # the canvas is rows x cols cells ...
  config.task.cols = 2
  config.task.cell = 28                # ... of this many pixels (56 x 56)
  config.task.min_digits = 1           # digits per canvas, uniform in [min, max], one per cell
  config.task.max_digits = 3
  config.task.scale_min = 0.8          # each digit scaled uniformly in [min, max] ...
  config.task.scale_max = 1.2
  config.task.max_rotation = 15.0      # ... and turned by up to this many degrees either way
  config.task.num_test = 1000          # held-out canvases (test digits only)
  config.task.decode_batch_size = 250  # rows per decoding call
  config.task.attention_penalty = 0.0  # lambda of the doubly stochastic term (Xu et al. eq. 14)

  # The seq2seq fields of the decoder; model.hidden_sizes and bidirectional are unused (the
  # regions go straight to the attention: there is no recurrent encoder).
  config.model.conv_features = (16, 32, 64)  # conv stages (3x3, ReLU, 2x2 pool), a last conv: 7 x 7 regions
  config.model.global_size = 256       # the baseline's global image feature
  config.model.cell = "lstm"
  config.model.embed_size = 64         # word embeddings and projected regions
  config.model.decoder_sizes = (128,)
  config.model.attention = "bahdanau"  # bahdanau (Xu et al. soft attention) | none (show and tell)
  config.model.attn_size = 64
  config.model.output_size = 128
  config.model.dropout = 0.0
  config.decode.max_len = 12           # the longest caption (3 x 3 words) + EOS, with room
  config.decode.beam_size = 5

  config.optim.learning_rate = 2e-3
  config.optim.schedule = "warmup_cosine"
  config.optim.warmup_steps = 100
  config.optim.clip_norm = 1.0
  config.batch_size = 32
  config.num_steps = 1500
  config.log_every = 100
  config.eval_every = 500
  config.checkpoint_every = 500
  config.keep_checkpoints = 1
  config.eval_batches = 0              # teacher-forced loss on all held-out canvases
  return base.finalize(
      config, arg,
      flags={"doubly_stochastic": base.set_to("task.attention_penalty", 1.0)},
      choices={"attention": base.choice_of("model.attention", ("bahdanau", "none",
                                                               "luong_general"))},
      smoke=[_seq2seq.shrink, shrink])


def shrink(config):
  config.task.rows = 1
  config.task.cols = 2                 # 28 x 56
  config.task.max_digits = 2
  config.task.num_test = 8
  config.task.decode_batch_size = 4
  config.model.conv_features = (4, 8)  # 7 x 14 regions
  config.model.global_size = 8
  config.decode.max_len = 5
  config.optim.warmup_steps = 1
