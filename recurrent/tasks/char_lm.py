"""A character (byte) language model of *The Adventures of Sherlock Holmes*, trained statefully.

Shape legend: B streams, T window (bytes), V = 256 byte values.

    e_t = E[c_t],  h_t = cell(h_{t-1}, e_t),  p(c_{t+1} | c_<=t) = softmax(W h_t + b)
    bits per character = -(1/N) sum_t log2 p(c_{t+1} | c_<=t)

Tokens are the UTF-8 bytes of the text (``recurrent.data.text``); after
``ascii_typography`` all but 122 of the book's 562,457 bytes are ASCII, so
bits per byte and bits per character differ by less than 0.03%. The
training part is read as B contiguous streams in consecutive windows of
``seq_len`` bytes, the state carried from one window to the next and reset at
each epoch (truncated BPTT, ``recurrent.data.stream``); the held-out part (the
book's last part, by position) is scored once per byte with the state carried
through it. This is the word-level models' code path (``recurrent.tasks._lm``,
the model ``recurrent.lm.StreamLM``) on bytes.

Generation is one-to-many: the prompt is read with teacher forcing, then one
byte at a time through ``recurrent.decoding`` (``sample`` at temperature > 0,
``greedy`` at 0); the report returns a sample per temperature, which the
trainer appends to ``<workdir>/samples.txt``.
"""

from __future__ import annotations

from recurrent.data import text
from recurrent.tasks._lm import make_model, stream_lm_task
from recurrent.tasks.base import Task


def build(config) -> Task:
  t = config.task
  book = text.read_text(t.path)
  if t.ascii_typography:
    book = text.ascii_typography(book)
  train, held_out = text.split(text.encode(book), t.held_out_fraction)
  prompt = text.encode(t.prompt)
  if len(prompt) == 0:
    raise ValueError("task.prompt: must hold at least one character, got ''")
  model = make_model(config.model, text.VOCAB_SIZE)
  return stream_lm_task(config, model, train.astype("int32"), held_out.astype("int32"), None,
                        prompt.astype("int32"), text.decode, bits_name="bpc")
