"""recurrent.host_memory: after keep_freed_memory() a freed large buffer is reused without page faults."""

import os
import subprocess
import sys
import textwrap

import pytest

from recurrent import host_memory

# Allocates, fills and frees a 64 MiB buffer twice; prints the minor page faults of the second round
# (each 4 KiB page of a freshly mmapped buffer faults on first touch: 16,384 of them; huge pages fewer).
_PROBE = textwrap.dedent("""
  import resource, sys, numpy as np
  from recurrent import host_memory
  if sys.argv[1] == "keep":
    assert host_memory.keep_freed_memory()
  n = 64 << 20
  a = np.ones(n, np.uint8); del a
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  a = np.ones(n, np.uint8); del a
  print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _second_round_faults(mode: str) -> int:
  out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  return int(out.stdout.split()[-1])


@pytest.mark.skipif(host_memory._glibc() is None, reason="the C library is not glibc")
def test_freed_buffer_is_reused_without_page_faults():
  default, kept = _second_round_faults("default"), _second_round_faults("keep")
  # glibc's default mmaps 64 MiB (above its 32 MiB dynamic ceiling) and unmaps it on free: the second
  # buffer faults in again (16,384 faults with 4 KiB pages, at least 32 with 2 MiB huge pages; 544 here).
  assert default >= 32, default
  assert kept <= default // 10, (kept, default)


def test_idempotent():
  assert host_memory.keep_freed_memory() == host_memory.keep_freed_memory()


def test_binaries_refuse_a_bad_switch_value():
  env = {**os.environ, "RECURRENT_KEEP_FREED_MEMORY": "yes"}
  out = subprocess.run([sys.executable, "-c", "import experiments"], capture_output=True, text=True,
                       timeout=120, env=env)
  assert out.returncode != 0
  assert "RECURRENT_KEEP_FREED_MEMORY: must be 0 or 1, got 'yes'" in out.stderr
