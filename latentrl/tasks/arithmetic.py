"""Generated arithmetic (sums and differences of small numbers): an easy, offline task for RL smoke runs.

Small models solve some of these, so a GRPO run on a CPU gets a reward signal within minutes.
"""

from __future__ import annotations

import random

from latentrl.tasks.gsm8k import gold_of
from latentrl.tasks.gsm8k import score as gsm8k_score
from latentrl.tasks.registry import Example, Task, register
from latentrl.tasks.sources import read_file

ANSWER_FORMAT = "Give the final number in \\boxed{}."


def generate(n: int, seed: int = 0, high: int = 20) -> list[dict]:
    """Rows in GSM8K's schema: `question`, and `answer` ending in '#### <number>'."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b, op = rng.randint(1, high), rng.randint(1, high), rng.choice("+-")
        rows.append({"question": f"What is {a} {op} {b}?", "answer": f"#### {a + b if op == '+' else a - b}"})
    return rows


def load(source: str, data_file: str | None) -> list[Example]:
    rows = read_file(data_file) if data_file else generate(500, seed=12345)  # a fixed evaluation set
    return [Example(str(i), r["question"], gold_of(r)) for i, r in enumerate(rows)]


TASK = register(Task("arithmetic", "(generated)", ANSWER_FORMAT, load, gsm8k_score, on_hub=False))
