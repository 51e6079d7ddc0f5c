"""Sampling piano rolls from a polyphonic model, and writing them as a standard MIDI file.

Shape legend: B batch, T time steps, N = 88 notes, H hidden.

The model of ``recurrent.tasks.music`` reads frame x_{t-1} and gives each of
the 88 notes of frame t an independent Bernoulli probability given the state,
p_tn = sigmoid(W h_t + b)_n. Sampling follows that assumption exactly:

    h_t, carries = Stack(x_{t-1}, carries),     x_tn ~ Bernoulli(p_tn) independently over n,

and x_t is fed back as the next input (one-to-many). From scratch the first
input is a silent frame (the training convention, ``shift_right``); primed,
the prime's frames are read with teacher forcing first and sampling continues
after its last frame. The module's parameters are the ``SequenceTagger``'s
({"rnn": {"stack": ...}, "head": {"kernel", "bias"}}): the same arrays the
pure ``Stack`` uses.

MIDI: ``midi_bytes`` encodes a roll as a format-0 Standard MIDI File (one track; the
MIDI 1.0 file specification): a header chunk ``MThd`` (format 0, 1 track,
``ticks`` per step), then an ``MTrk`` chunk of events, each preceded by its
delta time in ticks as a variable-length quantity (7 bits per byte, the high
bit set on all but the last byte): note-on 0x90 / note-off 0x80 with pitch =
note + 21 and a velocity, and the end-of-track meta event FF 2F 00. A note
held over several steps is one note-on and one note-off.
"""

from __future__ import annotations

import struct

import jax
import jax.numpy as jnp
import numpy as np

from recurrent.layers import Stack

LOWEST_MIDI = 21  # column 0 is A0


def note_logits(stack: Stack, params: dict, x_BTN: jax.Array, carries=None):
  """(logits [B, T, N] of the next frame at each step, carries): the SequenceTagger's forward pass."""
  carries, h_BTH = stack.apply(params["rnn"]["stack"], x_BTN, None, carries)
  head = params["head"]
  return h_BTH @ head["kernel"] + head["bias"][None, None, :], carries


def sample_rolls(stack: Stack, params: dict, rng: jax.Array, num_steps: int, batch_size: int = 1,
                 prime_TN: np.ndarray | None = None) -> tuple[jax.Array, jax.Array]:
  """(sampled rolls [B, num_steps, N] float32 of 0/1, their probabilities p [B, num_steps, N]).

  Each frame's notes are independent Bernoulli draws given the state; the
  frame is fed back as the next input. ``prime_TN`` is read first (teacher forcing).
  """
  N = stack.input_size
  carries = [layer.cell.initial_carry((batch_size,)) for layer in stack.layers]
  x_BN = jnp.zeros((batch_size, N), jnp.float32)            # the silent frame before a piece
  if prime_TN is not None and len(prime_TN):
    prime_BTN = jnp.broadcast_to(jnp.asarray(prime_TN, jnp.float32)[None], (batch_size,) + prime_TN.shape)
    inputs = jnp.concatenate([x_BN[:, None], prime_BTN[:, :-1]], 1)
    _, carries = note_logits(stack, params, inputs, carries)
    x_BN = prime_BTN[:, -1]

  def step(state, key):
    x_BN, carries = state
    logits_B1N, carries = note_logits(stack, params, x_BN[:, None], carries)
    p_BN = jax.nn.sigmoid(logits_B1N[:, 0])
    x_BN = jax.random.bernoulli(key, p_BN).astype(jnp.float32)
    return (x_BN, carries), (x_BN, p_BN)

  _, (x_TBN, p_TBN) = jax.lax.scan(step, (x_BN, carries), jax.random.split(rng, num_steps))
  return jnp.swapaxes(x_TBN, 0, 1), jnp.swapaxes(p_TBN, 0, 1)


def _varlen(n: int) -> bytes:
  """A MIDI variable-length quantity: 7 bits per byte, most significant first, high bit = more."""
  out = [n & 0x7F]
  n >>= 7
  while n:
    out.append(0x80 | (n & 0x7F))
    n >>= 7
  return bytes(reversed(out))


def midi_bytes(roll_TN: np.ndarray, ticks: int = 480, velocity: int = 80) -> bytes:
  """A format-0 Standard MIDI File of a binary piano roll, one step = ``ticks`` ticks (a quarter note)."""
  roll = np.asarray(roll_TN) > 0
  if roll.ndim != 2:
    raise ValueError(f"roll: expected a [T, notes] piano roll, got shape {roll.shape}")
  padded = np.concatenate([np.zeros((1, roll.shape[1]), bool), roll, np.zeros((1, roll.shape[1]), bool)])
  events, last = b"", 0
  for t in range(1, len(padded)):
    offs = np.flatnonzero(padded[t - 1] & ~padded[t])
    ons = np.flatnonzero(padded[t] & ~padded[t - 1])
    for note, status, vel in [(n, 0x80, 0) for n in offs] + [(n, 0x90, velocity) for n in ons]:
      tick = (t - 1) * ticks
      events += _varlen(tick - last) + bytes([status, int(note) + LOWEST_MIDI, vel])
      last = tick
  events += _varlen((len(padded) - 2) * ticks - last) + b"\xff\x2f\x00"
  header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks)
  return header + b"MTrk" + struct.pack(">I", len(events)) + events
