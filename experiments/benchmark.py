"""The speed benchmark: ``./launch.sh bench`` (see configs/benchmark.py for what it measures).

    python -m experiments.benchmark --config=configs/benchmark.py[:smoke] --workdir=runs/bench

Prints progress, then the table, and writes ``benchmark.json`` (config, rows,
machine) to the workdir.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time

from absl import app, flags
from ml_collections import config_flags

import jax

import experiments
from recurrent.bench import suites

_CONFIG = config_flags.DEFINE_config_file("config", "configs/benchmark.py", "benchmark config")
_WORKDIR = flags.DEFINE_string("workdir", "runs/bench", "where benchmark.json goes")


def machine() -> dict:
  info = {"python": platform.python_version(), "jax": jax.__version__,
          "backend": jax.default_backend(), "cpu_count": os.cpu_count(),
          "platform": platform.platform()}
  try:
    import torch
    info["torch"], info["torch_threads"] = torch.__version__, torch.get_num_threads()
  except ImportError:
    info["torch"] = None
  if hasattr(os, "getloadavg"):
    info["loadavg_at_start"] = os.getloadavg()
  info["cores_used"] = sorted(os.sched_getaffinity(0))
  info["keep_freed_memory"] = experiments.KEEP_FREED_MEMORY
  info["max_rss_mib"] = info["minor_page_faults"] = None  # filled in at the end
  return info


def set_threads(n: int) -> None:
  """n CPU cores for XLA and torch alike (before XLA's backend starts); 0 leaves the defaults.

  The process is pinned to n of the cores it may use (``os.sched_setaffinity``;
  threads started later inherit it), so n = 1 is one core for every library:
  XLA's thread pools still exist but share that core. Within it XLA's Eigen
  threading is turned off and torch gets n threads.
  """
  if n <= 0:
    return
  allowed = sorted(os.sched_getaffinity(0))
  if n > len(allowed):
    raise ValueError(f"threads: this process may use {len(allowed)} core(s), got threads={n}")
  os.sched_setaffinity(0, allowed[:n])
  if n == 1:
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
  try:
    import torch
    torch.set_num_threads(n)
  except ImportError:
    pass


def main(argv):
  del argv
  config = _CONFIG.value
  set_threads(config.threads)
  start = time.time()
  log = lambda msg: print(f"[{time.time() - start:6.1f} s] {msg}", flush=True)
  info = machine()
  log(f"machine: {info}")
  rows = suites.run(config, log)
  print(suites.table(rows), flush=True)
  usage = resource.getrusage(resource.RUSAGE_SELF)
  info["max_rss_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
  info["minor_page_faults"] = usage.ru_minflt   # the whole process: see recurrent/host_memory.py
  os.makedirs(_WORKDIR.value, exist_ok=True)
  path = os.path.join(_WORKDIR.value, "benchmark.json")
  with open(path, "w") as f:
    json.dump({"config": config.to_dict(), "machine": info, "rows": rows,
               "wall_s": time.time() - start}, f, indent=1)
  log(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
