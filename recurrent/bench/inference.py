"""Inference speed: streaming latency, batched throughput and decoding, ours against PyTorch and Flax.

Shape legend: B batch, T time, E embedding size, H hidden size, V vocabulary, K beam width.

One model for every runner: a word-level LSTM language model, embedding E ->
L-layer LSTM H -> softmax over V (``recurrent.lm.StreamLM`` on a ``Stack`` of
LSTMs), random weights. PyTorch's copy (``nn.Embedding`` + ``nn.LSTM(num_layers=L,
batch_first=True)`` + ``nn.Linear``) and Flax's (``nn.Embed`` + L
``nn.RNN(nn.OptimizedLSTMCell)`` + ``nn.Dense``) get the same weights
(``recurrent.convert``), so the three compute the same logits. The end token's
output bias is set to -30 in that shared model, so no hypothesis ends early and
every runner decodes exactly T tokens per row (tokens counted as B * T).

Modes (``build(mode, impl, ...)``), each a ``Runner`` whose ``step()`` is one timed unit:

  stream  B = 1, one token in, its logits out, the carry kept between calls: a
          model answering online. ours: ``Stack.step`` under ``jax.jit`` (the
          carry in and out, donated); torch: ``model(x_t, hidden)`` under
          ``torch.inference_mode``; flax: the cells' step under ``jax.jit``.
          One ``step()`` = one token (its latency).
  batch   the logits of every position of a [B, T] batch at once. ours:
          ``StreamLM.apply`` jitted; torch: ``model(x)``; flax: ``nn.RNN``.
  greedy  B rows, T new tokens by argmax. ours: ``decoding.greedy`` (one jitted
          ``lax.while_loop``); torch: a Python loop of steps, argmax on the
          tensor, the way a PyTorch user writes it; flax: its step in the same
          ``decoding.greedy`` loop.
  beam    beam search of width K, T tokens. ours: ``decoding.beam_search`` (one
          jitted while_loop); torch: a Python loop of steps with ``topk`` over
          the K V extensions and the hidden state reordered; flax: its step in
          ``decoding.beam_search``.

``Runner.loss()`` reports a number every implementation should agree on (the
last token's log-probability sum for the decoders, the mean logit otherwise):
the smoke test compares them, so a runner that computed something else fails.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from recurrent import decoding
from recurrent.bench.impls import Runner

MODES = ("stream", "batch", "greedy", "beam")
IMPLS = ("ours", "torch", "flax")
EOS = 2             # the end token: its output bias is -30, so it never wins (module docstring)


def our_model(V: int, E: int, H: int, L: int):
  from recurrent.layers import make_stack
  from recurrent.lm import StreamLM
  return StreamLM(make_stack("lstm", E, (H,) * L), V)


def our_params(V: int, E: int, H: int, L: int, seed: int = 0) -> dict:
  params = our_model(V, E, H, L).init(jax.random.key(seed))
  params["head"]["b"] = params["head"]["b"].at[EOS].set(-30.0)
  return jax.tree.map(np.asarray, params)


def inputs(B: int, T: int, V: int, seed: int = 0) -> np.ndarray:
  """[B, T] random token ids (the end token excluded), the same for every runner."""
  ids = np.random.default_rng(seed).integers(3, V, (B, T))
  return ids.astype(np.int32)


# ----------------------------------------------------------------------------- the three models

def _torch_model(params: dict, V: int, E: int, H: int, L: int):
  import torch
  from torch import nn
  from recurrent import convert

  class LM(nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(V, E)
      self.lstm = nn.LSTM(E, H, num_layers=L, batch_first=True)
      self.head = nn.Linear(H, V)

    def forward(self, x, hidden=None):
      h, hidden = self.lstm(self.embed(x), hidden)
      return self.head(h), hidden

  model = LM().eval()
  as_torch = lambda a: torch.from_numpy(np.array(a))
  with torch.no_grad():
    model.embed.weight.copy_(as_torch(params["embed"]))
    model.lstm.load_state_dict({k: as_torch(v) for k, v in convert.to_torch(
        our_model(V, E, H, L).stack, params["stack"]).items()})
    model.head.weight.copy_(as_torch(params["head"]["W"].T))
    model.head.bias.copy_(as_torch(params["head"]["b"]))
  return model


def _flax_model(params: dict, V: int, E: int, H: int, L: int):
  """(module, variables): Flax linen with OptimizedLSTMCell, our weights."""
  import flax.linen as nn
  from recurrent import convert

  class LM(nn.Module):
    def setup(self):
      self.embed = nn.Embed(V, E)
      self.rnns = [nn.RNN(nn.OptimizedLSTMCell(H)) for _ in range(L)]
      self.head = nn.Dense(V)

    def __call__(self, tokens_BT):
      x = self.embed(tokens_BT)
      for rnn in self.rnns:
        x = rnn(x)
      return self.head(x)

    def step(self, carries, tokens_B):
      x, new = self.embed(tokens_B), []
      for rnn, c in zip(self.rnns, carries):
        c, x = rnn.cell(c, x)
        new.append(c)
      return self.head(x), new

  stack = our_model(V, E, H, L).stack
  variables = {"params": {
      "embed": {"embedding": params["embed"]},
      **{f"rnns_{l}": {"cell": convert.to_flax(layer.cell, p, "OptimizedLSTMCell")}
         for l, (layer, p) in enumerate(zip(stack.layers, params["stack"]))},
      "head": {"kernel": params["head"]["W"], "bias": params["head"]["b"]}}}
  return LM(), jax.tree.map(jnp.asarray, variables)


# ----------------------------------------------------------------------------- runners

def _jax_runner(fn, *args, out: dict) -> Runner:
  compiled = jax.jit(fn).lower(*args).compile()

  def step():
    out["value"] = jax.block_until_ready(compiled(*args))

  return Runner(step, -1, lambda: float(out["value"]))


def build(mode: str, impl: str, B: int, T: int, V: int, E: int, H: int, L: int,
          beam_size: int = 5, seed: int = 0) -> Runner:
  """The runner of ``impl`` for ``mode`` (module docstring); ``B, T`` are 1 and unused for stream."""
  if mode not in MODES:
    raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
  if impl not in IMPLS:
    raise ValueError(f"impl: must be one of {IMPLS}, got {impl!r}")
  params = our_params(V, E, H, L, seed)
  tokens = inputs(B, T, V, seed)
  return {"ours": _ours, "torch": _torch, "flax": _flax}[impl](
      mode, params, tokens, V, E, H, L, beam_size)


def _ours(mode, params, tokens, V, E, H, L, K) -> Runner:
  model = our_model(V, E, H, L)
  params = jax.tree.map(jnp.asarray, params)
  B, T = tokens.shape
  W_HV, b_V = params["head"]["W"], params["head"]["b"]

  def step_fn(p, tokens_B, carries):
    carries, h_BH = model.stack.step(p["stack"], carries, p["embed"][tokens_B])
    return h_BH @ p["head"]["W"] + p["head"]["b"][None, :], carries

  if mode == "stream":
    step = jax.jit(step_fn, donate_argnums=2)
    fresh = lambda: jax.tree.map(jnp.copy, model.initial_carries(1))  # h and c: two buffers
    box = {"carries": fresh(), "t": 0}
    tok = [jnp.asarray(tokens[:1, t]) for t in range(T)]
    step(params, tok[0], fresh())   # compile

    def run():
      logits, box["carries"] = step(params, tok[box["t"] % T], box["carries"])
      box["logits"] = jax.block_until_ready(logits)
      box["t"] += 1

    return Runner(run, -1, lambda: float(jnp.mean(box["logits"])))
  x = jnp.asarray(tokens)
  if mode == "batch":
    return _jax_runner(lambda p, x: jnp.mean(model.apply(p, x)[0]), params, x, out={})
  del W_HV, b_V
  bos = x[:, 0]
  if mode == "greedy":
    fn = lambda p, bos: jnp.mean(decoding.greedy(
        functools.partial(step_fn, p), model.initial_carries(B), bos, T).logprob)
  else:
    fn = lambda p, bos: jnp.mean(decoding.beam_search(
        functools.partial(step_fn, p), model.initial_carries(B), bos, K, T, eos=EOS).logprob[:, 0])
  return _jax_runner(fn, params, bos, out={})


def _flax(mode, params, tokens, V, E, H, L, K) -> Runner:
  import flax.linen as nn
  module, variables = _flax_model(params, V, E, H, L)
  B, T = tokens.shape
  x = jnp.asarray(tokens)

  def carries0(n):
    cell = nn.OptimizedLSTMCell(H)
    return [cell.initialize_carry(jax.random.key(0), (n, E if l == 0 else H)) for l in range(L)]

  def step_fn(v, tokens_B, carries):
    return module.apply(v, carries, tokens_B, method=module.step)

  if mode == "stream":
    step = jax.jit(step_fn, donate_argnums=2)
    fresh = lambda: jax.tree.map(jnp.copy, carries0(1))
    box = {"carries": fresh(), "t": 0}
    tok = [jnp.asarray(tokens[:1, t]) for t in range(T)]
    step(variables, tok[0], fresh())

    def run():
      logits, box["carries"] = step(variables, tok[box["t"] % T], box["carries"])
      box["logits"] = jax.block_until_ready(logits)
      box["t"] += 1

    return Runner(run, -1, lambda: float(jnp.mean(box["logits"])))
  if mode == "batch":
    return _jax_runner(lambda v, x: jnp.mean(module.apply(v, x)), variables, x, out={})
  bos = x[:, 0]
  if mode == "greedy":
    fn = lambda v, bos: jnp.mean(decoding.greedy(
        functools.partial(step_fn, v), carries0(B), bos, T).logprob)
  else:
    fn = lambda v, bos: jnp.mean(decoding.beam_search(
        functools.partial(step_fn, v), carries0(B), bos, K, T, eos=EOS).logprob[:, 0])
  return _jax_runner(fn, variables, bos, out={})


def _torch(mode, params, tokens, V, E, H, L, K) -> Runner:
  import torch
  model = _torch_model(params, V, E, H, L)
  x = torch.from_numpy(tokens.astype(np.int64))
  B, T = x.shape
  box = {"hidden": None, "t": 0}

  if mode == "stream":
    def run():
      with torch.inference_mode():
        t = box["t"] % T
        logits, box["hidden"] = model(x[:1, t:t + 1], box["hidden"])
      box["logits"], box["t"] = logits, box["t"] + 1
    return Runner(run, -1, lambda: float(box["logits"].mean()))

  if mode == "batch":
    def run():
      with torch.inference_mode():
        box["value"] = model(x)[0].mean()
    return Runner(run, -1, lambda: float(box["value"]))

  if mode == "greedy":
    def run():
      with torch.inference_mode():
        tok, hidden, logprob = x[:, :1], None, torch.zeros(B)
        for _ in range(T):
          logits, hidden = model(tok, hidden)
          logp = torch.log_softmax(logits[:, 0], -1)
          tok = logp.argmax(-1, keepdim=True)
          logprob += logp.gather(1, tok)[:, 0]
        box["value"] = logprob.mean()
    return Runner(run, -1, lambda: float(box["value"]))

  def run():  # beam search; no hypothesis ends (the end token's bias is -30)
    with torch.inference_mode():
      tok = x[:, :1].repeat_interleave(K, 0)                      # [B K, 1]
      hidden = None
      score = torch.full((B, K), -float("inf"))
      score[:, 0] = 0.0                                           # one live slot at the start
      rows = (torch.arange(B) * K)[:, None]
      for _ in range(T):
        logits, hidden = model(tok, hidden)
        logp = torch.log_softmax(logits[:, 0], -1).view(B, K, V)
        score, flat = (score[..., None] + logp).view(B, K * V).topk(K, dim=1)
        parent = (flat // V + rows).view(-1)
        hidden = tuple(h[:, parent] for h in hidden)
        tok = (flat % V).view(-1, 1)
      box["value"] = score[:, 0].mean()
  return Runner(run, -1, lambda: float(box["value"]))
