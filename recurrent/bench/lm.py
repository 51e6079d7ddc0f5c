"""Training throughput of a word-level LSTM language model: the harness against PyTorch.

Shape legend: B streams, T window (truncated-BPTT unroll), V vocabulary, E embedding, H hidden.

The model and recipe are Zaremba et al. (2014)'s PTB ``small`` (configs/ptb.py:
embedding E -> 2-layer LSTM H -> softmax over V; SGD at learning rate 1,
gradients clipped to global norm 5, loss = sum over the window of the batch
mean cross-entropy, the state carried from one window to the next with the
gradient stopped there). The data is one synthetic token stream (uniform
random ids; the speed does not depend on the words), cut into B streams and
read in consecutive windows of T, the same stream for both runners. One
``step()`` reads the next window and runs one training step to completion.

  ours   the harness's own step, as ``experiments.train`` runs it:
         ``recurrent.tasks._lm.stream_lm_task`` (``StreamLM``: the stack on the
         recurrence engine) + ``recurrent.training.state.make_train_step``
         (optax chain from ``make_optimizer``, the carry in the train state,
         the non-finite guard), jitted with the state donated: its ``logged=False``
         variant, the one the loop runs on every step but the logging ones (one
         in ``log_every`` = 200 for PTB), which leaves out the accuracy and norms
  torch  the same model written the way a PyTorch user writes it (the
         ``word_language_model`` example): ``nn.Embedding`` + ``nn.LSTM(num_layers=2,
         batch_first=True)`` + ``nn.Linear``, ``CrossEntropyLoss`` x T,
         ``clip_grad_norm_``, ``torch.optim.SGD``, the hidden state detached
         after every window; started from ours' initial weights
         (``recurrent.convert.to_torch``), with ``bias_hh`` frozen at zero (the
         paper's LSTM has one bias per gate; nn.LSTM's two would be one
         parameter learning at twice the rate), so both train the same
         function on the same windows and their losses agree step for step.

Words per second = B T / seconds per step. Peak memory as ``recurrent.bench.impls``
says (JAX: the compiled step's memory analysis; PyTorch: the profiler's largest
total of live tensor bytes during one step).
"""

from __future__ import annotations

import numpy as np

import jax

from recurrent.bench.impls import Runner, torch_peak_bytes


def lm_config(B: int, T: int, V: int, E: int, H: int, tokens: int):
  """configs/ptb.py:size=small with the sizes replaced; steps_per_epoch derived from ``tokens``."""
  from configs import ptb
  config = ptb.get_config("size=small")
  config.unlock()
  config.batch_size, config.task.seq_len = B, T
  config.model.embed_size, config.model.hidden_sizes = E, (H, H)
  config.optim.steps_per_epoch = (tokens // B - 1) // T
  return config, V


def token_stream(tokens: int, V: int, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, V, tokens).astype(np.int32)


def ours(B: int, T: int, V: int, E: int, H: int, tokens: int, seed: int = 0) -> tuple[Runner, dict]:
  """(the runner, the initial parameters as NumPy) of the harness's stateful train step."""
  from recurrent.tasks import _lm
  from recurrent.training import optim as optim_lib
  from recurrent.training import state as state_lib
  config, V = lm_config(B, T, V, E, H, tokens)
  ids = token_stream(tokens, V, seed)
  model = _lm.make_model(config.model, V)
  task = _lm.stream_lm_task(config, model, ids, ids[:T + 1], None, ids[:1], lambda ids_: "")
  tx = optim_lib.make_optimizer(config.optim, config.num_steps)
  state = state_lib.init_state(task, tx, seed, B)
  params0 = jax.tree.map(np.array, state.params)  # a copy: the step donates the state
  train_step = jax.jit(state_lib.make_train_step(task, tx, config.optim, logged=False),
                       donate_argnums=0)
  compiled = train_step.lower(state, task.train_batch(0)).compile()
  m = compiled.memory_analysis()
  peak = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
          - m.alias_size_in_bytes)
  box = {"state": state, "step": 0, "loss": None}

  def step():
    box["state"], metrics = compiled(box["state"], task.train_batch(box["step"]))
    box["loss"] = jax.block_until_ready(metrics["loss"])
    box["step"] += 1

  return Runner(step, int(peak), lambda: float(box["loss"]) / T), params0


def _torch_step(B: int, T: int, V: int, E: int, H: int, tokens: int, params0: dict, seed: int):
  """(step, last mean nll per word) of a fresh PyTorch model from ``params0`` (ours' initial parameters)."""
  import torch
  from torch import nn
  from recurrent import convert
  from recurrent.data import stream
  from recurrent.tasks import _lm
  config, V = lm_config(B, T, V, E, H, tokens)
  stack = _lm.make_model(config.model, V).stack

  class LM(nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(V, E)
      self.lstm = nn.LSTM(E, H, num_layers=2, batch_first=True)
      self.head = nn.Linear(H, V)

    def forward(self, x, hidden):
      h, hidden = self.lstm(self.embed(x), hidden)
      return self.head(h), hidden

  model = LM()
  as_torch = lambda a: torch.from_numpy(np.ascontiguousarray(a))
  with torch.no_grad():
    model.embed.weight.copy_(as_torch(params0["embed"]))
    model.lstm.load_state_dict({k: as_torch(v) for k, v in
                                convert.to_torch(stack, params0["stack"]).items()})
    model.head.weight.copy_(as_torch(params0["head"]["W"].T))
    model.head.bias.copy_(as_torch(params0["head"]["b"]))
  for name, p in model.lstm.named_parameters():  # nn.LSTM's second bias, frozen at 0: one bias per
    if name.startswith("bias_hh"):              # gate as in the paper (two would learn at twice the rate)
      p.requires_grad_(False)
  trained = [p for p in model.parameters() if p.requires_grad]
  opt = torch.optim.SGD(trained, lr=config.optim.learning_rate)
  criterion = nn.CrossEntropyLoss()
  data = torch.from_numpy(stream.streams(token_stream(tokens, V, seed), B).astype(np.int64))
  windows = (data.shape[1] - 1) // T
  box = {"hidden": None, "step": 0, "loss": None}

  def step():
    k = box["step"] % windows
    x, y = data[:, k * T:(k + 1) * T], data[:, k * T + 1:(k + 1) * T + 1]
    hidden = None if k == 0 else tuple(h.detach() for h in box["hidden"])  # truncated BPTT
    opt.zero_grad(set_to_none=True)
    logits, box["hidden"] = model(x, hidden)
    loss = criterion(logits.reshape(-1, V), y.reshape(-1)) * T  # sum over the window of the batch mean
    loss.backward()
    nn.utils.clip_grad_norm_(trained, config.optim.clip_norm)
    opt.step()
    box["loss"] = loss.detach()
    box["step"] += 1

  return step, lambda: float(box["loss"]) / T


def torch_lm(B: int, T: int, V: int, E: int, H: int, tokens: int, params0: dict,
             seed: int = 0) -> Runner:
  """The PyTorch runner; its peak memory is profiled on a second, throwaway copy of the model,
  so that the timed copy reads the same windows as ours."""
  step, loss = _torch_step(B, T, V, E, H, tokens, params0, seed)
  peak = torch_peak_bytes(_torch_step(B, T, V, E, H, tokens, params0, seed)[0])
  return Runner(step, peak, loss)


def build(names, B: int, T: int, V: int, E: int, H: int, tokens: int, seed: int = 0) -> dict:
  """{name: Runner} for ``names`` (ours, torch); torch starts from ours' initial weights."""
  runner, params0 = ours(B, T, V, E, H, tokens, seed)
  runners = {"ours": runner}
  if "torch" in names:
    runners["torch"] = torch_lm(B, T, V, E, H, tokens, params0, seed)
  return {k: v for k, v in runners.items() if k in names}
