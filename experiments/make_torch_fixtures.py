"""Regenerates tests/fixtures/torch_*.npz: PyTorch RNN/LSTM/GRU weights, inputs, outputs and final states.

    .venv/bin/pip install -e '.[bench]'          # PyTorch (or: ./launch.sh bench --help)
    .venv/bin/python -m experiments.make_torch_fixtures [--out=tests/fixtures]

tests/test_convert.py loads the state dicts with ``recurrent.convert.from_torch``
and checks our stack's outputs and final carries against PyTorch's, so CI
does not need PyTorch. Each file holds ``sd/<name>`` (the state dict, with
random nonzero biases on both sides so that the bias split is exercised),
``x`` [B, T, D], ``lengths`` [B] (run as a packed sequence), ``y`` [B, T, out]
(zeros past each length), ``h_n`` [layers * directions, B, H], ``c_n`` for
the LSTM, and ``spec`` (cell, D, H, layers, bidirectional) as JSON.
"""

import json
from pathlib import Path

import numpy as np
import torch
from absl import app, flags

OUT = flags.DEFINE_string("out", "tests/fixtures", "folder for the .npz files")

CASES = {  # name -> (torch class, kwargs, our cell name)
    "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh", "num_layers": 2, "bidirectional": True}, "rnn_tanh"),
    "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu", "num_layers": 1, "bidirectional": False}, "rnn_relu"),
    "lstm": (torch.nn.LSTM, {"num_layers": 2, "bidirectional": True}, "lstm"),
    "gru": (torch.nn.GRU, {"num_layers": 2, "bidirectional": True}, "gru"),
}
B, T, D, H = 3, 6, 4, 5


def main(argv):
  del argv
  out = Path(OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  for i, (name, (cls, kwargs, cell)) in enumerate(CASES.items()):
    torch.manual_seed(i)
    module = cls(D, H, batch_first=True, **kwargs).float()
    with torch.no_grad():
      for k, v in module.named_parameters():
        if k.startswith("bias"):
          v.uniform_(-0.5, 0.5)
    x = torch.randn(B, T, D)
    lengths = torch.tensor([6, 4, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    with torch.no_grad():
      y, state = module(packed)
      y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=T)
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    arrays = {f"sd/{k}": v.detach().numpy() for k, v in module.state_dict().items()}
    arrays.update(x=x.numpy(), lengths=lengths.numpy().astype(np.int32), y=y.numpy(), h_n=h_n.numpy())
    if c_n is not None:
      arrays["c_n"] = c_n.numpy()
    spec = {"cell": cell, "input_size": D, "hidden_size": H, "num_layers": kwargs["num_layers"],
            "bidirectional": kwargs["bidirectional"], "torch": torch.__version__}
    arrays["spec"] = np.array(json.dumps(spec))
    np.savez(out / f"torch_{name}.npz", **arrays)
    print(f"wrote {out / f'torch_{name}.npz'} ({cls.__name__}, {spec})")


if __name__ == "__main__":
  app.run(main)
