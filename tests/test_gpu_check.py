"""bench/gpu_check.py in its CPU mode (tiny shapes): one table, every row present with a finite number."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess  # every test here launches another process

pytest.importorskip("trl")
ROOT = Path(__file__).resolve().parents[1]
ROWS = [
    "latent step / decode step",
    "LatentMAS questions/s, batch 1",
    "LatentMAS questions/s, batch 2",
    "LatentMAS questions/s, batch 4",
    "TextMAS / LatentMAS seconds per question",
    "batch invariance",
    "GRPO step seconds",
    "GRPO rollout/trainer max |log-prob difference|",
]


@pytest.mark.parametrize("tokenizer_dir", [False, True], ids=["embedded", "tokenizer-files"])
def test_cpu_mode_prints_every_row_with_a_finite_number(tmp_path, tokenizer_dir):
    """Both ways to get the tokenizer: the embedded model, or its saved files (what a lent GPU carries)."""
    extra = []
    if tokenizer_dir:
        from latentrl.models import load_model

        load_model().tokenizer.save_pretrained(tmp_path)
        extra = ["--tokenizer", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--cpu", *extra], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == len(ROWS)
    for name, line in zip(ROWS, table):
        label, value = line.strip("| ").rsplit("|", 1)
        assert name in label and math.isfinite(float(value)), line
    values = {row: float(line.rsplit("|", 2)[1]) for row, line in zip(ROWS, table)}
    assert values["batch invariance"] == 1.0  # float32 on the CPU: batching changes no greedy text
    assert values["GRPO rollout/trainer max |log-prob difference|"] < 1e-4  # float32: the recompute is exact
