#!/usr/bin/env bash
# The latent code on an older transformers line (vLLM's profile pins one below the project's 5.24).
# Builds .venv-tf<MAJOR><MINOR> with the project's pins but transformers==VERSION, then runs the tests of the
# latent engine, the methods, the alignment, the vllm backend's CPU part and the GRPO log-prob hook.
# Usage: scripts/compat.sh [TRANSFORMERS_VERSION]    default 5.17.0 (newest below vllm 0.31's < 5.18)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-5.17.0}"
venv=".venv-tf$(echo "$version" | cut -d. -f1,2 | tr -d .)"
VENV="$venv" PINS="transformers==$version" scripts/bootstrap.sh dev
"$venv/bin/python" -c 'import transformers, torch; print(f"transformers {transformers.__version__}, torch {torch.__version__}")'
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_latent_core.py tests/test_methods.py \
  tests/test_align.py tests/test_vllm.py tests/test_rl.py "${@:2}"
