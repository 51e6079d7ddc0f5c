"""Samples piano rolls from a trained polyphonic-music workdir: MIDI files and a piano-roll figure.

    ./launch.sh music --workdir=runs/music                       # train first (configs/music.py)
    python -m experiments.music_generate --workdir=runs/music --steps=64 --samples=2 --prime_steps=16

Writes ``<workdir>/generated/sample_<i>.mid`` (from scratch: the first input
is the silent frame), ``primed_<i>.mid`` (continuing the first
``prime_steps`` steps of test piece 0, which are included in the file) and
``piano_rolls.png``. Each step's 88 notes are drawn as independent Bernoullis
given the state, as the model's loss assumes (``recurrent.music_sampling``).
"""

from pathlib import Path

import jax
import numpy as np
from absl import app, flags

from experiments import outputs
from recurrent import music_sampling
from recurrent.data.music import DATASETS, NUM_NOTES, load_piano_rolls
from recurrent.data.paths import data_file
from recurrent.layers import make_stack
from recurrent.training import loop

flags.DEFINE_string("workdir", None, "a workdir trained with configs/music.py")
flags.DEFINE_string("checkpoint", "best", "'best', 'latest' or a step number")
flags.DEFINE_integer("steps", 64, "time steps (quarter notes) to sample")
flags.DEFINE_integer("samples", 2, "pieces sampled from scratch and primed, each")
flags.DEFINE_integer("prime_steps", 16, "steps of test piece 0 read before the primed samples")
flags.DEFINE_integer("seed", 0, "sampling seed")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  workdir = Path(FLAGS.workdir)
  config = loop.load_config(workdir)
  setup = loop._Setup(config, workdir, read_only=True)
  steps = setup.ckpt.all_steps()
  if not steps:
    raise ValueError(f"workdir: no checkpoint in {workdir}/checkpoints")
  step = {"best": setup.ckpt.best_step() or setup.ckpt.latest_step(),
          "latest": setup.ckpt.latest_step()}.get(FLAGS.checkpoint) or int(FLAGS.checkpoint)
  params = setup.ckpt.restore(step, like=setup.initial_state()).params
  m = config.model
  stack = make_stack(m.cell, NUM_NOTES, tuple(m.hidden_sizes), m.bidirectional, m.merge, m.dropout,
                     m.residual)
  prime = load_piano_rolls(data_file(config.task.data_dir, DATASETS[config.task.dataset]))["test"][0]
  prime = prime[:FLAGS.prime_steps].astype(np.float32)
  key = jax.random.key(FLAGS.seed)
  scratch, _ = music_sampling.sample_rolls(stack, params, jax.random.fold_in(key, 0), FLAGS.steps,
                                           FLAGS.samples)
  primed, _ = music_sampling.sample_rolls(stack, params, jax.random.fold_in(key, 1), FLAGS.steps,
                                          FLAGS.samples, prime_TN=prime)
  out = workdir / "generated"
  out.mkdir(exist_ok=True)
  rolls, titles = [], []
  for i in range(FLAGS.samples):
    a = np.asarray(scratch[i])
    b = np.concatenate([prime, np.asarray(primed[i])])
    outputs.write_midi(str(out / f"sample_{i}.mid"), a)
    outputs.write_midi(str(out / f"primed_{i}.mid"), b)
    rolls += [a, b]
    titles += [f"sample {i} from scratch ({config.task.dataset}, step {step})",
               f"primed {i}: test piece 0's first {len(prime)} steps, then sampled"]
  outputs.plot_rolls(rolls, titles, out / "piano_rolls.png")
  print(f"wrote {2 * FLAGS.samples} MIDI files and piano_rolls.png to {out}")


if __name__ == "__main__":
  app.run(main)
