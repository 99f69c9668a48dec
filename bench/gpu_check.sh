#!/usr/bin/env bash
# The GPU check under DeepSpeed ZeRO-2 on one GPU (see bench/gpu_check.py and docs/performance.md, "GPU check").
# Run from the repository root with the bundle's venv active or PYTHON pointing at its interpreter.
set -euo pipefail
PYTHON=${PYTHON:-python}
PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} exec "$PYTHON" -m accelerate.commands.launch --config_file recipes/accelerate/zero2.yaml --num_processes 1 \
    -m bench.gpu_check "$@"
