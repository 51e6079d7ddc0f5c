"""Starts N processes of one multi-process run on this machine: ``python -m recurrent.training.launcher``.

    python -m recurrent.training.launcher --num_processes=2 [--devices_per_process=2] -- \\
        python -m experiments.train --config=configs/adding.py:smoke --workdir=runs/adding2
    ./launch.sh adding --num_processes=2                  # the same, through launch.sh

Each process gets the command plus ``--coordinator_address=127.0.0.1:PORT``
(a free port, found by binding port 0), ``--num_processes=N`` and
``--process_id=i``. Process 0's output passes through unchanged, the others'
lines are prefixed ``[process i]``. SIGINT, SIGTERM and SIGHUP are forwarded
to every process, and those still running ``--grace`` seconds later get
SIGKILL (a process blocked in a collective cannot run a SIGTERM handler).
When one process fails (a non-zero status or a signal) the launcher says
which, sends the others SIGTERM, then SIGKILL after ``--grace`` seconds, and
exits with the failed process's status; it exits 0 only when every process
did. ``--devices_per_process=K`` simulates K CPU devices per process
(``XLA_FLAGS=--xla_force_host_platform_device_count=K``).

On a cluster the scheduler starts the processes instead (see the README:
an ``sbatch`` script with ``srun``, or a TPU pod slice with ``--worker=all``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import app, flags

from recurrent.checks import check_int

flags.DEFINE_integer("num_processes", None, "how many processes to start")
flags.DEFINE_integer("devices_per_process", 0, "simulated CPU devices per process; 0 = leave XLA_FLAGS")
flags.DEFINE_integer("port", 0, "the coordinator's port on 127.0.0.1; 0 = a free one")
flags.DEFINE_float("grace", 10.0, "seconds between SIGTERM and SIGKILL when stopping the others")
flags.mark_flag_as_required("num_processes")
FLAGS = flags.FLAGS

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def free_port() -> int:
  """A TCP port on 127.0.0.1 that nothing listens on now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_env(devices_per_process: int) -> dict:
  env = dict(os.environ)
  if devices_per_process:
    kept = [f for f in env.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(kept + [f"--xla_force_host_platform_device_count={devices_per_process}"])
  return env


def describe(rc: int) -> str:
  return f"signal {signal.Signals(-rc).name}" if rc < 0 else f"status {rc}"


def _pump(stream, prefix: bytes, out) -> None:
  for line in iter(stream.readline, b""):
    out.write(prefix + line)
    out.flush()
  stream.close()


def launch(command: list[str], num_processes: int, devices_per_process: int = 0, port: int = 0,
           grace: float = 10.0, echo=lambda s: print(s, file=sys.stderr, flush=True)) -> int:
  """Runs ``command`` as processes 0..N-1 of one run; the exit status of the run (0 = all succeeded)."""
  check_int("num_processes", num_processes)
  if devices_per_process < 0:
    raise ValueError(f"devices_per_process: must be >= 0, got {devices_per_process}")
  if not command:
    raise ValueError("command: nothing to run; put it after '--'")
  address = f"127.0.0.1:{port or free_port()}"
  env = process_env(devices_per_process)
  echo(f"launch: {num_processes} processes, coordinator {address}: {' '.join(command)}")
  procs, pumps = [], []
  for i in range(num_processes):
    args = [*command, f"--coordinator_address={address}", f"--num_processes={num_processes}",
            f"--process_id={i}"]
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)  # signals reach them only through us
    procs.append(p)
    t = threading.Thread(target=_pump, args=(p.stdout, b"" if i == 0 else f"[process {i}] ".encode(),
                                             sys.stdout.buffer), daemon=True)
    t.start()
    pumps.append(t)

  def send(sig, to):
    for p in to:
      if p.poll() is None:
        try:
          os.killpg(p.pid, sig)
        except ProcessLookupError:
          pass

  received = []
  kill_at = []  # when the processes still running get SIGKILL: set by a failure or a forwarded signal

  def forward(sig, frame):
    del frame
    received.append(sig)
    send(sig, procs)
    if not kill_at:  # a process blocked in a collective cannot run its SIGTERM handler
      kill_at.append(time.monotonic() + grace)

  previous = {s: signal.signal(s, forward) for s in FORWARDED}
  try:
    failed = None
    while None in [p.poll() for p in procs]:  # every process polled (any() would stop early)
      if failed is None:
        bad = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode not in (None, 0)]
        if bad:
          failed = bad[0]
          others = [p for p in procs if p.poll() is None]
          echo(f"launch: process {failed[0]} exited with {describe(failed[1])}; stopping the "
               f"other {len(others)} (SIGTERM, SIGKILL after {grace:g} s)")
          send(signal.SIGTERM, others)
          kill_at[:] = [time.monotonic() + grace]
      if kill_at and time.monotonic() >= kill_at[0]:
        send(signal.SIGKILL, procs)
      time.sleep(0.05)
  finally:
    for s, h in previous.items():
      signal.signal(s, h)
    send(signal.SIGKILL, procs)
    for p in procs:
      p.wait()
    for t in pumps:
      t.join(timeout=5)
  codes = [p.returncode for p in procs]
  if failed is None:
    failed = next(((i, c) for i, c in enumerate(codes) if c != 0), None)
  if failed is None:
    echo(f"launch: all {num_processes} processes finished")
    return 0
  if received:
    return 128 + received[0]
  echo(f"launch: the run failed: process {failed[0]} exited with {describe(failed[1])} "
       f"(statuses: {', '.join(describe(c) for c in codes)})")
  return failed[1] if failed[1] > 0 else 128 - failed[1]


def main(argv):
  command = argv[1:]
  if command and command[0] == "--":
    command = command[1:]
  sys.exit(launch(command, FLAGS.num_processes, FLAGS.devices_per_process, FLAGS.port, FLAGS.grace))


if __name__ == "__main__":
  app.run(main)
