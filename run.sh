#!/usr/bin/env bash
# cycle-medgan-tf entry point. Creates .venv (unless a virtual environment is active), installs the package
# once, then runs a subcommand. Extra arguments are passed through as absl flags (e.g. --profile=smoke).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

usage() {
  cat <<'USAGE'
usage: ./run.sh COMMAND [--flag=value ...]

  pet_ct      Main job for PET->CT: generate (or reuse) the default data, train UNIT, CycleGAN and Cycle-MedGAN,
              evaluate them, print Table I and write results/pet_ct/ (quick CPU profile unless a GPU is present;
              --profile=smoke|quick|paper overrides). Re-running reuses finished stages.
  mr_motion   The same for MR motion correction (motion-corrupted -> motion-free), into results/mr_motion/.
  reproduce   Both tasks, then results/table1.md with both halves of Table I beside the paper's numbers.
  test        Run the whole test suite (pytest, one worker per core via pytest-xdist; PYTEST_WORKERS=N or 0
              overrides); extra arguments go to pytest.
  setup       Only create the environment and install the package (idempotent).
  help        This text.

Environment: uses the active virtual environment if there is one, else ./.venv (created on first use).
Default data are generated into ${CYCLE_MEDGAN_CACHE:-~/.cache/cycle_medgan_tf}.
USAGE
}

setup_env() {
  if [ -n "${VIRTUAL_ENV:-}" ]; then
    PY="$VIRTUAL_ENV/bin/python"
  else
    if [ ! -x "$ROOT/.venv/bin/python" ]; then
      echo "[run.sh] creating virtual environment in .venv" >&2
      "${PYTHON:-python3}" -m venv "$ROOT/.venv"
    fi
    PY="$ROOT/.venv/bin/python"
  fi
  local stamp_dir
  stamp_dir=$("$PY" -c 'import sys; print(sys.prefix)')
  local want
  want=$(cat setup.py | sha256sum | cut -c1-16)
  local stamp="$stamp_dir/.cycle_medgan_tf-installed-$want"
  if [ ! -f "$stamp" ] || ! "$PY" -c 'import cycle_medgan_tf' >/dev/null 2>&1; then
    echo "[run.sh] installing cycle-medgan-tf and its dependencies (first run only; several minutes)" >&2
    "$PY" -m pip install --quiet --upgrade pip >&2
    "$PY" -m pip install --quiet -e ".[test]" >&2
    rm -f "$stamp_dir"/.cycle_medgan_tf-installed-*
    touch "$stamp"
  fi
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
  help|-h|--help) usage ;;
  setup) setup_env; echo "[run.sh] environment ready: $PY" ;;
  test) setup_env
        # --dist=loadgroup: tests sharing a module's training fixture stay on one worker (tests/conftest.py)
        exec "$PY" -m pytest -q -n "${PYTEST_WORKERS:-auto}" --dist=loadgroup --no-loadscope-reorder tests "$@" ;;
  pet_ct|mr_motion) setup_env; exec "$PY" -m cycle_medgan_tf.main_job --task="$cmd" "$@" ;;
  reproduce) setup_env; exec "$PY" -m cycle_medgan_tf.reproduce "$@" ;;
  *) echo "run.sh: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
esac
