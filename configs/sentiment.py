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

  config.batch_size = 32
  config.num_steps = 1500              # 20 epochs of the 2,400 training sentences
  config.log_every = 75
  config.eval_every = 75               # once per epoch
  config.checkpoint_every = 750
  config.keep_checkpoints = 1
  return base.finalize(config, arg, flags={"bidirectional": base.set_to("model.bidirectional", True)},
                       choices={"pooling": base.choice_of("model.pooling", POOLINGS)}, smoke=[shrink_eval_batch])


def shrink_eval_batch(config):
  config.task.eval_batch_size = 16


def get_sweep():
  """Pooling x direction, 6 runs: ./launch.sh sweep configs/sentiment.py --workdir=runs/sentiment_sweep."""
  return {"model.pooling": list(POOLINGS), "model.bidirectional": [False, True]}
