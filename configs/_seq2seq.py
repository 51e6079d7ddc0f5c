"""The config fields every seq2seq experiment shares (reverse_digits, translation), and its variants.

Variants (the config argument, comma-separated): ``attention=none|bahdanau|
luong_dot|luong_general`` and ``smoke``.
"""

import ml_collections

from configs import base

ATTENTIONS = ("none", "bahdanau", "luong_dot", "luong_general")


def seq2seq_config() -> ml_collections.ConfigDict:
  config = base.base_config()
  config.model.cell = "lstm"
  config.model.hidden_sizes = (64,)       # the encoder's layers
  config.model.bidirectional = True       # encoder output size 2 x 64
  config.model.dropout = 0.0              # between encoder layers and on h~
  config.model.embed_size = 64            # source and target embeddings
  config.model.decoder_sizes = (128,)     # the decoder's layers
  config.model.attention = "bahdanau"     # none | bahdanau | luong_dot | luong_general
  config.model.attn_size = 64             # hidden size of the additive score
  config.model.output_size = 128          # size of h~ = tanh([c; h] W_c)
  config.model.input_feeding = False      # feed h~_{t-1} to the decoder (Luong et al. 2015)
  config.model.bridge = "auto"            # auto | copy | learned | zeros

  config.task.teacher_forcing_start = 1.0  # scheduled sampling: the ratio at step 0 ...
  config.task.teacher_forcing_end = 1.0    # ... falling linearly to this at num_steps

  config.decode = ml_collections.ConfigDict()
  config.decode.max_len = 12              # most output tokens (EOS included)
  config.decode.beam_size = 5             # K
  config.decode.length_penalty = "wu"     # none | average | wu
  config.decode.alpha = 0.6               # exponent of the wu penalty

  config.optim.name = "adam"
  config.optim.learning_rate = 3e-3
  config.optim.clip_norm = 1.0
  return config


def finalize(config: ml_collections.ConfigDict, arg, smoke=()) -> ml_collections.ConfigDict:
  """``base.finalize`` with ``attention=...``; ``smoke`` shrinks the seq2seq sizes, then applies the caller's ``smoke``."""
  return base.finalize(config, arg, choices={"attention": base.choice_of("model.attention", ATTENTIONS)},
                       smoke=[shrink, *smoke])


def shrink(config):
  config.model.embed_size = 8
  config.model.decoder_sizes = (32,)  # = the encoder's 2 x 16 after smoke (luong_dot)
  config.model.attn_size = 8
  config.model.output_size = 16
  config.decode.beam_size = 2
