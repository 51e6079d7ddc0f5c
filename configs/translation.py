"""French-to-English translation on the Tatoeba pairs, with and without attention (issue 5).

    ./launch.sh translation --config=configs/translation.py:attention=bahdanau --workdir=runs/translation_bahdanau
    ./launch.sh translation --config=configs/translation.py:attention=none --workdir=runs/translation_none
    python -m experiments.translation_report --workdir=runs/translation_bahdanau,runs/translation_none
    python -m experiments.train --config=configs/translation.py:smoke,attention=luong_dot --workdir=/tmp/tr

The data come from $RECURRENT_DATA_DIR/eng_fra_tatoeba/fra.txt (or
``--config.task.data_path``); Tatoeba (tatoeba.org) and ManyThings.org
(manythings.org/anki), CC BY 2.0 FR. Sized for a CPU: sentences of at most
15 word tokens, vocabularies of 6000, hidden 128, a fixed step budget so that
the variants compare at the same budget. The last evaluation writes
``translation_report.json``, ``samples.txt`` and ``attention_<i>.png``.
"""

from configs import _seq2seq


def get_config(arg=None):
  config = _seq2seq.seq2seq_config()
  config.task.name = "translation"
  config.task.data_path = ""           # fra.txt or a data folder; "" = $RECURRENT_DATA_DIR
  config.task.source = "fra"           # fra: French -> English; eng: English -> French
  config.task.max_words = 15           # drop pairs with more word tokens on either side
  config.task.vocab_size = 6000        # per language, specials included; the rest is <unk>
  config.task.test_percent = 5.0       # held out by a hash of the source sentence
  config.task.bleu_sentences = 1000    # held-out sentences decoded for BLEU at each evaluation
  config.task.decode_batch_size = 250  # rows per decoding call

  config.model.cell = "lstm"
  config.model.hidden_sizes = (128,)   # bidirectional encoder: outputs of 256
  config.model.embed_size = 128
  config.model.decoder_sizes = (256,)
  config.model.attn_size = 128
  config.model.output_size = 256
  config.model.dropout = 0.1
  config.decode.max_len = 19           # max_words + EOS, with room to spare
  config.decode.beam_size = 5

  config.optim.learning_rate = 2e-3
  config.optim.schedule = "warmup_cosine"
  config.optim.warmup_steps = 100
  config.batch_size = 64
  config.num_steps = 5000
  config.log_every = 100
  config.eval_every = 1000
  config.checkpoint_every = 1000
  config.keep_checkpoints = 1
  config.eval_batches = 20             # teacher-forced loss on the first 1280 held-out pairs
  return _seq2seq.finalize(config, arg, smoke=[shrink])


def shrink(config):
  config.task.max_words = 8
  config.decode.max_len = 10
  config.task.bleu_sentences = 16
  config.task.decode_batch_size = 8
  config.task.vocab_size = 200
  config.optim.warmup_steps = 1
