"""A developer tool: tries bad values in every field of a config and lists the ones that are not refused by name.

    RECURRENT_DATA_DIR=/path/to/data nice -n 5 python -m experiments.probe_config sine pos --fields=task.,model.

For each leaf of ``configs/NAME.py:smoke`` (or ``--arg``) it sets, one at a
time, -1 / 0 / 10**9 (ints), -1 / NaN / 1e9 (floats), "nope" / "" (strings),
() / (0,) / (-3,) (tuples); a value the locked ConfigDict refuses by type is
skipped. Each bad config goes through what ``train_and_evaluate`` runs before
it writes anything (``loop._Setup`` and ``check_shapes``: the task's build,
init, one traced train and eval step); configs/gradient_decay.py through
``gradient_lab.check_config``. It prints

    ACCEPTED field=value                   it passed every check
    UNNAMED  field=value: Error: message   it failed, but the message does not name the field
    TIMEOUT  field=value                   it ran past ``--per_value_s`` (a huge count traced step by step)

and nothing for a value refused with the field's name in the message. Not
everything it prints is a defect: 10**9 steps or a large learning rate are
legitimate, and a data path that does not exist is named as the path. The
address space is capped (``--max_gib``) so that a huge size fails with a
MemoryError instead of swapping. Not part of the test suite: one config takes
minutes (each value traces the model).
"""

from __future__ import annotations

import importlib
import math
import resource
import signal
import tempfile
from pathlib import Path

from absl import app, flags

_FIELDS = flags.DEFINE_list("fields", [], "only the fields starting with one of these prefixes (e.g. task.,model.)")
_SKIP = flags.DEFINE_list("skip", [], "fields starting with these prefixes are left out")
_ARG = flags.DEFINE_string("arg", "smoke", "the config's variant argument")
_MAX_GIB = flags.DEFINE_float("max_gib", 12.0, "address-space limit of this process, GiB")
_PER_VALUE_S = flags.DEFINE_integer("per_value_s", 120, "seconds one value may take (then TIMEOUT)")


class _Timeout(Exception):
  pass


def _alarm(signum, frame):
  raise _Timeout()


def leaves(config, prefix=""):
  """(dotted name, value) for every non-section field of ``config``."""
  for k, v in config.items():
    if hasattr(v, "items"):
      yield from leaves(v, f"{prefix}{k}.")
    else:
      yield f"{prefix}{k}", v


def bad_values(value) -> list:
  """The values tried for a field holding ``value`` (booleans are left out: the ConfigDict types them)."""
  if isinstance(value, bool):
    return []
  if isinstance(value, int):
    return [-1, 0, 10**9]
  if isinstance(value, float):
    return [-1.0, math.nan, 1e9]
  if isinstance(value, str):
    return ["nope", ""]
  if isinstance(value, tuple):
    return [(), (0,), (-3,)]
  return []


def probe(name: str) -> None:
  from recurrent import gradient_lab  # after absl has parsed the flags
  from recurrent.training import loop

  module = importlib.import_module(f"configs.{name}")
  for field, value in leaves(module.get_config(_ARG.value)):
    if _FIELDS.value and not any(field.startswith(p) for p in _FIELDS.value):
      continue
    if any(field.startswith(p) for p in _SKIP.value):
      continue
    for bad in bad_values(value):
      config = module.get_config(_ARG.value)
      *parents, leaf = field.split(".")
      node = config
      for p in parents:
        node = node[p]
      try:
        node[leaf] = bad
      except (TypeError, ValueError):
        continue  # refused by type
      signal.alarm(_PER_VALUE_S.value)
      try:
        if "eval_every" not in config:   # configs/gradient_decay.py: the gradient lab's own checks
          gradient_lab.check_config(config)
        else:
          with tempfile.TemporaryDirectory() as workdir:
            loop._Setup(config, Path(workdir)).check_shapes(config.optim, 0)
        print(f"ACCEPTED {field}={bad!r}", flush=True)
      except _Timeout:
        print(f"TIMEOUT  {field}={bad!r}: still running after {_PER_VALUE_S.value} s", flush=True)
      except Exception as e:  # pylint: disable=broad-except
        text = str(e)
        if leaf not in text:
          first = text.splitlines()[0] if text else ""
          print(f"UNNAMED  {field}={bad!r}: {type(e).__name__}: {first[:160]}", flush=True)
      finally:
        signal.alarm(0)


def main(argv):
  limit = int(_MAX_GIB.value * 2**30)
  resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
  signal.signal(signal.SIGALRM, _alarm)
  for name in argv[1:]:
    print(f"== {name}", flush=True)
    probe(name)


if __name__ == "__main__":
  app.run(main)
