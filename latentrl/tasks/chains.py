"""Chained arithmetic in words: a generated reasoning task with headroom for a 135M model, disjoint splits.

A problem starts from a number and applies 1-3 operations (add, subtract, multiply), one short sentence
each: "Start with 12. Add 7. Multiply by 2. What number do you have now?". Its `level` is the number of
operations. The embedded SmolLM2-135M, as a single agent, solves 32% / 11% / 7% of levels 1 / 2 / 3 of
the test set (the longer word problems of an earlier version: none of 16), so there is room both ways.
Which split a problem belongs to is decided by a hash of its text, so train and test are disjoint by
construction, whatever the seeds and sizes. Level 3 has 203,898 distinct problems (enumerated), far more
than any run draws; level 1 has only 552, 435 of them train (asking `generate` for more than exist is an
error).
"""

from __future__ import annotations

import hashlib
import random

from latentrl.tasks.gsm8k import score as gsm8k_score
from latentrl.tasks.registry import Example, Task, register
from latentrl.tasks.sources import read_file

ANSWER_FORMAT = "Work it out step by step, then put the final number in \\boxed{}."
LEVELS = (1, 2, 3)
SPLITS = ("train", "test")
MAX_MISSES = 20_000  # draws in a row without a new problem: the level's space is used up
EVAL_SIZE = 300  # the fixed evaluation set: 100 test-split problems per level
STEPS = {"+": "Add {k}.", "-": "Subtract {k}.", "*": "Multiply by {k}."}


def split_of(question: str) -> str:
    """'test' for one problem in five (by a hash of its text), else 'train'."""
    return "test" if int(hashlib.sha256(question.encode()).hexdigest(), 16) % 5 == 0 else "train"


def problem(rng: random.Random, level: int) -> tuple[str, int]:
    """One problem of `level` operations and its answer (every intermediate value a non-negative integer)."""
    value = rng.randint(2, 30)
    text = [f"Start with {value}."]
    for _ in range(level):
        op = rng.choice("+*-" if value > 0 else "+*")
        if op == "*":
            k = rng.randint(2, 3)
            value *= k
        elif op == "-":
            k = rng.randint(1, min(value, 9))
            value -= k
        else:
            k = rng.randint(1, 9)
            value += k
        text.append(STEPS[op].format(k=k))
    text.append("What number do you have now?")
    return " ".join(text), value


def generate(n: int, split: str, seed: int = 0, levels: tuple[int, ...] = LEVELS) -> list[dict]:
    """n distinct problems of `split`, levels in turn; rows in GSM8K's schema plus `level`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
    rng, rows, seen, misses = random.Random(f"chains-{split}-{seed}"), [], set(), 0
    while len(rows) < n:
        level = levels[len(rows) % len(levels)]
        question, answer = problem(rng, level)
        if split_of(question) == split and question not in seen:
            seen.add(question)
            rows.append({"question": question, "answer": f"#### {answer}", "level": level})
            misses = 0
        elif (misses := misses + 1) > MAX_MISSES:  # e.g. level 1: 552 problems, 435 train
            have = sum(r["level"] == level for r in rows)
            raise ValueError(f"chains: only {have} distinct level-{level} {split} problems exist; ask for fewer")
    return rows


def load(source: str, data_file: str | None) -> list[Example]:
    """The fixed evaluation set: EVAL_SIZE test-split problems (seed 0), or a file in the same schema."""
    rows = read_file(data_file) if data_file else generate(EVAL_SIZE, "test", seed=0)
    return [
        Example(f"chains-{i}", r["question"], r["answer"].split("####")[-1].strip(), {"level": r.get("level")})
        for i, r in enumerate(rows)
    ]


TASK = register(Task("chains", "(generated)", ANSWER_FORMAT, load, gsm8k_score))
