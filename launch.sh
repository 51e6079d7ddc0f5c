#!/usr/bin/env bash
# The one entry point. On first use it creates .venv and installs the project with its pinned
# dependencies; then:
#   ./launch.sh                      the default experiment (the gradient lab)
#   ./launch.sh test [pytest args]   the test suite (./launch.sh test -m slow: the slow end-to-end runs)
#   ./launch.sh NAME [flags]         experiments/NAME.py if it exists, else experiments.train on
#                                    configs/NAME.py; --config and --workdir default to
#                                    configs/NAME.py and runs/NAME
#   ./launch.sh NAME --num_processes=N [--devices_per_process=K] [flags]
#                                    N processes of that run on this machine (jax.distributed on
#                                    127.0.0.1; recurrent/training/launcher.py); K simulated CPU devices each
#   ./launch.sh sweep configs/NAME.py --workdir=DIR [--parallel=N]
#   ./launch.sh bench [flags]        the speed benchmark (installs the [bench] extra, PyTorch, first)
#   ./launch.sh docs [OUT]           the API reference from the docstrings (pdoc, the [docs] extra) in OUT
#                                    (default docs/api, git-ignored); fails on a broken reference
#   RECURRENT_ACCEL=cuda12 ./launch.sh ...   also installs JAX's CUDA 12 build (cuda13, tpu likewise)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv
PY="$VENV/bin/python"

# Reinstall when pyproject.toml changes (the stamp holds its checksum).
install() {
  local extras=$1 stamp="$VENV/.installed-$1"
  local want; want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  if [ ! -x "$PY" ]; then
    echo "launch.sh: creating $VENV with $($PYTHON --version 2>&1)" >&2
    "$PYTHON" -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
  fi
  echo "launch.sh: installing recurrent[$extras] into $VENV" >&2
  "$PY" -m pip install --quiet -e ".[$extras]"
  echo "$want" > "$stamp"
}

install "test${RECURRENT_ACCEL:+,$RECURRENT_ACCEL}"   # RECURRENT_ACCEL=cuda12|cuda13|tpu: JAX's accelerator build

cmd=${1:-gradient_decay}
[ $# -gt 0 ] && shift

case "$cmd" in
  test)
    exec "$PY" -m pytest "$@"
    ;;
  sweep)
    exec "$PY" -m experiments.sweep "$@"
    ;;
  bench)
    install bench
    exec "$PY" -m experiments.benchmark "$@"
    ;;
  docs)
    install docs
    exec "$PY" docs/build_api.py "$@"
    ;;
  *)
    args=()
    has_config=0; has_workdir=0; launcher=()
    for a in "$@"; do
      case "$a" in
        --config=*|--config) has_config=1 ;;
        --workdir=*|--workdir) has_workdir=1 ;;
      esac
      case "$a" in
        --num_processes=*|--devices_per_process=*) launcher+=("$a") ;;
        *) args+=("$a") ;;
      esac
    done
    if [ -f "experiments/$cmd.py" ]; then
      module="experiments.$cmd"
    elif [ -f "configs/$cmd.py" ]; then
      module="experiments.train"
    else
      echo "launch.sh: no experiment or config named '$cmd' (see experiments/ and configs/)" >&2
      exit 2
    fi
    if [ $has_config -eq 0 ] && [ -f "configs/$cmd.py" ]; then
      args=("--config=configs/$cmd.py" "${args[@]}")
    fi
    if [ $has_workdir -eq 0 ]; then
      args=("--workdir=runs/$cmd" "${args[@]}")
    fi
    if [ ${#launcher[@]} -gt 0 ]; then
      exec "$PY" -m recurrent.training.launcher "${launcher[@]}" -- "$PY" -m "$module" "${args[@]}"
    fi
    exec "$PY" -m "$module" "${args[@]}"
    ;;
esac
