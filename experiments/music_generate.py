"""Samples piano rolls from a trained polyphonic-music workdir: MIDI files and a piano-roll figure.

    ./launch.sh music --workdir=runs/music                       # train first (configs/music.py)
    python -m experiments.music_generate --workdir=runs/music --steps=64 --samples=2 --prime_steps=16

Writes ``<workdir>/generated/sample_<i>.mid`` (from scratch: the first input
is the silent frame), ``primed_<i>.mid`` (continuing the first
``prime_steps`` steps of test piece 0, which are included in the file) and
``piano_rolls.png``. Each step's 88 notes are drawn as independent Bernoullis
given the state, as the model's loss assumes (``recurrent.music_sampling``).
"""

from absl import app, flags

from experiments import outputs

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
  step, _, written = outputs.music_samples(FLAGS.workdir, FLAGS.checkpoint, FLAGS.steps, FLAGS.samples,
                                        FLAGS.prime_steps, FLAGS.seed)
  print(f"step {step}: wrote {len(written) - 1} MIDI files and {written[-1].name} to {written[-1].parent}")


if __name__ == "__main__":
  app.run(main)
