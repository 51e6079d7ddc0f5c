"""Sentence sentiment (seed 003): last-state vs mean vs max pooling, uni- vs bidirectional LSTM.

    ./launch.sh sentiment                                         # LSTM, last-state pooling
    ./launch.sh sentiment --config=configs/sentiment.py:pooling=max,bidirectional \\
        --workdir=runs/sentiment_max_bi
    ./launch.sh sweep configs/sentiment.py --workdir=runs/sentiment_sweep   # pooling x direction
    python -m experiments.train --config=configs/sentiment.py:smoke --workdir=/tmp/sentiment

Variants (comma-separated after the colon): ``pooling=last|mean|max``,
``bidirectional``, ``smoke``. Data: the 3,000 UCI sentences
($RECURRENT_DATA_DIR/sentiment_labelled_sentences or --config.task.data_dir),
split 80/10/10 stratified by (source, label). The trainer keeps the
checkpoint with the best valid accuracy; ``test_accuracy`` is logged at every
evaluation next to it, and ``test_predictions.txt`` shows a few test
sentences with p(positive).
"""

from configs import base

POOLINGS = ("last", "mean", "max")


def get_config(arg=None):
  config = base.base_config()
  config.task.name = "sentiment"
  config.task.data_dir = ""            # folder like shared/data; "" = $RECURRENT_DATA_DIR
  config.task.split = (0.8, 0.1, 0.1)  # train / valid / test fractions of each (source, label) stratum
  config.task.split_seed = 0           # the split is fixed by this, independent of config.seed
  config.task.min_count = 2            # words seen fewer times in train become <unk>
  config.task.max_len = 64             # tokens kept per sentence (the longest has 84)
  config.task.bucket = 16              # pad each batch's time axis to a multiple of this
  config.task.eval_batch_size = 100    # sentences per evaluation batch
  config.task.num_samples = 12         # test sentences written to test_predictions.txt

  config.model.cell = "lstm"
  config.model.hidden_sizes = (64,)
  config.model.bidirectional = False
  config.model.pooling = "last"        # last | mean | max (seed 003)
  config.model.embed_size = 64

  config.optim.name = "adam"
  config.optim.learning_rate = 2e-3
  config.optim.weight_decay = 1e-4     # 2,400 training sentences: a little regularisation
  config.optim.clip_norm = 1.0

  config.task.epochs = 20
  config.batch_size = 32
  config.num_steps = 0                 # derived below: epochs x steps per epoch (1,500 at B = 32)
  config.log_every = 0                 # derived below: once per epoch (75 at B = 32)
  config.eval_every = 0                # derived below: once per epoch
  config.checkpoint_every = 0          # derived below: every 10 epochs
  config.keep_checkpoints = 1
  derive_steps(config)
  return base.finalize(config, arg, flags={"bidirectional": base.set_to("model.bidirectional", True)},
                       choices={"pooling": base.choice_of("model.pooling", POOLINGS)}, smoke=[shrink_eval_batch])


TRAIN_SENTENCES = 2400  # 80% of each of the six (source, label) strata of 500 sentences


def derive_steps(config) -> None:
  """Steps per epoch = TRAIN_SENTENCES // batch_size (``EpochOrder``); num_steps and the intervals from it.

  Field references: ``--config.batch_size`` and ``--config.task.epochs`` move them (setting
  a derived field cuts its link). TRAIN_SENTENCES is the default ``task.split``'s training
  split; with another split, set ``num_steps`` and the intervals by hand.
  """
  per_epoch = base.derive(lambda b: max(TRAIN_SENTENCES // b, 1), base.int_ref(config, "batch_size"))
  config.num_steps = base.int_ref(config, "task.epochs") * per_epoch
  config.log_every = per_epoch + 0
  config.eval_every = per_epoch + 0
  config.checkpoint_every = per_epoch * 10


def shrink_eval_batch(config):
  config.task.eval_batch_size = 16


def get_sweep():
  """Pooling x direction, 6 runs: ./launch.sh sweep configs/sentiment.py --workdir=runs/sentiment_sweep."""
  return {"model.pooling": list(POOLINGS), "model.bidirectional": [False, True]}
