"""Word-level LSTM language models, Zaremba, Sutskever & Vinyals (2014), "Recurrent Neural Network Regularization", section 4.1.

    ./launch.sh ptb --config=configs/ptb.py:size=small --workdir=runs/ptb_small      # 13 epochs, non-regularised
    ./launch.sh ptb --config=configs/ptb.py:size=medium --workdir=runs/ptb_medium    # 39 epochs, dropout 0.5
    ./launch.sh ptb --config=configs/ptb.py:size=small,corpus=wikitext2 --workdir=runs/wt2_small
    python -m experiments.train --config=configs/ptb.py:smoke --workdir=/tmp/ptb    # a few steps

Data: ``$RECURRENT_DATA_DIR/ptb/ptb.{train,valid,test}.txt`` (Mikolov's PTB:
LDC terms, research use only, never copied into the repository) or
``$RECURRENT_DATA_DIR/wikitext2/{train,valid,test}.txt`` (WikiText-2, Merity
et al. 2016, CC BY-SA 3.0), or ``--config.task.path=FOLDER``.

The paper's recipe, as its section 4.1 states it (and its code): 2 LSTM
layers, embedding size = hidden size, every parameter ~ U(-s, s), SGD at
learning rate 1 held for E epochs then divided by d after each epoch,
gradients clipped to global norm c, minibatch 20, the state carried from one
window to the next (truncated BPTT over T steps), dropout on the non-recurrent
connections only:

    size     hidden  s     epochs  E   d     c   T   dropout  paper valid / test ppl
    small    200     0.1   13      4   2     5   20  0        120.7 / 114.5
    medium   650     0.05  39      6   1.2   5   35  0.5       86.2 /  82.7
    large    1500    0.04  55      14  1.15  10  35  0.65      82.2 /  78.4

``num_steps`` (epochs x windows per epoch), ``optim.steps_per_epoch`` and
``eval_every`` (once per epoch) follow ``--config.task.epochs``,
``--config.batch_size`` and ``--config.task.seq_len`` (``derive_steps``).

The loss they differentiate is the sum over the T steps of the minibatch's
mean (``task.sum_over_time``; the learning rate of 1 assumes it). Later
improvements are flags, off by default so that the paper's setting stays
exact: ``tie`` (embedding = softmax weights, Inan et al. 2017; Press & Wolf
2017), ``variational`` (one dropout mask per window, Gal & Ghahramani 2016),
``embed_dropout`` (whole words dropped at rate 0.1, Gal & Ghahramani 2016).
The eval metric is ``nll`` (nats per word) on valid, ``ppl`` = exp(nll);
``test_nll`` / ``test_ppl`` are scored at every evaluation too, each split
read as one stream with the state carried through it (``task.eval_streams=1``).
"""

from configs import base

SIZES = {  # hidden, init scale, epochs, decay after E epochs, decay factor d, clip, window T, dropout
    "small": (200, 0.1, 13, 4, 2.0, 5.0, 20, 0.0),
    "medium": (650, 0.05, 39, 6, 1.2, 5.0, 35, 0.5),
    "large": (1500, 0.04, 55, 14, 1.15, 10.0, 35, 0.65),
}
TRAIN_TOKENS = {"ptb": 929_589, "wikitext2": 2_088_628}  # words + one <eos> per line of train.txt
PROMPTS = {"ptb": "the company said", "wikitext2": "The game"}


def get_config(arg=None):
  config = base.base_config()
  config.task.name = "word_lm"
  config.task.corpus = "ptb"            # ptb | wikitext2 (recurrent/tasks/word_lm.py)
  config.task.path = ""                 # the corpus folder; "" = $RECURRENT_DATA_DIR/<corpus>
  config.task.epochs = 13               # num_steps = epochs x windows per epoch
  config.task.seq_len = 20              # T: the truncated-BPTT window (unroll length)
  config.task.eval_streams = 1          # valid/test read as this many carried streams (1 = one unroll)
  config.task.sum_over_time = True      # loss = sum over the window of the batch mean (the paper's code)
  config.task.prompt = PROMPTS["ptb"]   # words read before sampling
  config.task.temperatures = (0.0, 0.7, 1.0)  # 0 = greedy
  config.task.sample_len = 40           # words sampled after the prompt

  config.model.cell = "lstm"
  config.model.hidden_sizes = (200, 200)
  config.model.embed_size = 200         # = hidden size, as in the paper
  config.model.bidirectional = False    # a language model reads left to right
  config.model.merge = "concat"
  config.model.dropout = 0.0            # non-recurrent connections: embedding out, between layers, output
  config.model.residual = False
  config.model.init_scale = 0.1         # every parameter ~ U(-s, s)
  config.model.variational = False      # one dropout mask per window (Gal & Ghahramani 2016)
  config.model.embed_dropout = 0.0      # drop whole words of the embedding
  config.model.tie_weights = False      # softmax weights = embedding (Inan et al. 2017; Press & Wolf 2017)

  config.optim.name = "sgd"
  config.optim.learning_rate = 1.0
  config.optim.schedule = "epoch_decay"  # lr x decay_rate^max(epoch + 1 - decay_after_epochs, 0)
  config.optim.steps_per_epoch = 0       # windows per epoch, derived below (the task checks it)
  config.optim.decay_after_epochs = 4
  config.optim.decay_rate = 0.5
  config.optim.clip_norm = 5.0

  config.batch_size = 20                # streams
  config.num_steps = 0                  # derived below: epochs x steps_per_epoch
  config.log_every = 200
  config.eval_every = 0                 # derived below: once per epoch
  config.checkpoint_every = 500
  config.keep_checkpoints = 2
  config.eval_batches = 0               # every window of the split
  derive_steps(config)
  set_size(config, "small")
  return base.finalize(
      config, arg,
      choices={"size": base.Choice(tuple(SIZES), set_size),
               "corpus": base.Choice(tuple(TRAIN_TOKENS), set_corpus)},
      flags={"tie": base.set_to("model.tie_weights", True),
             "variational": base.set_to("model.variational", True),
             "embed_dropout": base.set_to("model.embed_dropout", 0.1)},
      smoke=[shrink])


def derive_steps(config) -> None:
  """steps_per_epoch = (N // B - 1) // T for the corpus's N training tokens; num_steps, eval_every from it.

  Field references: ``--config.batch_size``, ``--config.task.seq_len`` and ``--config.task.epochs``
  move them (``--config.num_steps`` or ``--config.eval_every`` set them instead), and a bad value
  of any of the three fails naming it when num_steps is first read.
  """
  corpus, n = config.task.corpus, TRAIN_TOKENS[config.task.corpus]

  def windows(batch_size: int, seq_len: int) -> int:
    steps = (n // batch_size - 1) // seq_len
    if steps < 1:
      raise ValueError(f"batch_size, task.seq_len: {batch_size} streams of the {n}-token {corpus} "
                       f"training split hold no full window of {seq_len} words")
    return steps

  config.optim.steps_per_epoch = base.derive(windows, base.int_ref(config, "batch_size"),
                                             base.int_ref(config, "task.seq_len"))
  per_epoch = config.optim.get_ref("steps_per_epoch")
  config.num_steps = base.int_ref(config, "task.epochs") * per_epoch
  config.eval_every = per_epoch + 0   # a new reference: setting eval_every leaves steps_per_epoch


def set_size(config, size: str) -> None:
  hidden, scale, epochs, after, factor, clip, T, dropout = SIZES[size]
  config.model.hidden_sizes = (hidden, hidden)
  config.model.embed_size = hidden
  config.model.init_scale = scale
  config.model.dropout = dropout
  config.task.epochs = epochs
  config.task.seq_len = T
  config.optim.decay_after_epochs = after
  config.optim.decay_rate = 1.0 / factor
  config.optim.clip_norm = clip


def set_corpus(config, corpus: str) -> None:
  config.task.corpus = corpus
  config.task.prompt = PROMPTS[corpus]
  derive_steps(config)


def shrink(config):
  config.task.seq_len = 5
  config.task.sample_len = 5
  config.task.temperatures = (1.0,)     # one sampler to compile
  config.task.epochs = 1
  config.model.embed_size = 16
  config.model.hidden_sizes = (16, 16)
  config.optim.schedule = "constant"     # tests make their own corpus, so the epoch length is theirs
  config.num_steps = 6
  config.eval_every = 3
