"""Chained word problems: a generated reasoning task with headroom for small models and disjoint splits.

A problem starts from a quantity and applies 2-4 operations (gain, give away, multiply, share), each
phrased by a word template; its `level` is the number of operations. Which split a problem belongs to is
decided by a hash of its text, so train and test are disjoint by construction, whatever the seeds and
sizes. The space (names x items x numbers x operation chains) is far larger than any run draws.
"""

from __future__ import annotations

import hashlib
import random

from latentrl.tasks.gsm8k import score as gsm8k_score
from latentrl.tasks.registry import Example, Task, register
from latentrl.tasks.sources import read_file

ANSWER_FORMAT = "Work it out step by step, then put the final number in \\boxed{}."
LEVELS = (2, 3, 4)
SPLITS = ("train", "test")
NAMES = ["Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonas"]
ITEMS = ["apples", "marbles", "stickers", "coins", "books", "pencils", "shells", "cards"]
STEPS = {
    "+": "Then {name} gets {k} more {items}.",
    "-": "Then {name} gives {k} {items} away.",
    "*": "Then {name} ends up with {k} times as many {items}.",
    "/": "Then {name} shares the {items} equally among {k} people, {name} included, and keeps one share.",
}


def split_of(question: str) -> str:
    """'test' for one problem in five (by a hash of its text), else 'train'."""
    return "test" if int(hashlib.sha256(question.encode()).hexdigest(), 16) % 5 == 0 else "train"


def problem(rng: random.Random, level: int) -> tuple[str, int]:
    """One problem of `level` operations and its answer (every intermediate value a non-negative integer)."""
    name, items, value = rng.choice(NAMES), rng.choice(ITEMS), rng.randint(2, 30)
    text = [f"{name} has {value} {items}."]
    for _ in range(level):
        divisors = [d for d in (2, 3, 4, 5) if value % d == 0]
        op = rng.choice(["+", "*"] + (["-"] if value > 1 else []) + (["/"] if divisors else []))
        if op == "+":
            k = rng.randint(1, 20)
            value += k
        elif op == "-":
            k = rng.randint(1, min(value - 1, 20))
            value -= k
        elif op == "*":
            k = rng.randint(2, 4)
            value *= k
        else:
            k = rng.choice(divisors)
            value //= k
        text.append(STEPS[op].format(name=name, items=items, k=k))
    text.append(f"How many {items} does {name} have now?")
    return " ".join(text), value


def generate(n: int, split: str, seed: int = 0, levels: tuple[int, ...] = LEVELS) -> list[dict]:
    """n distinct problems of `split`, levels in turn; rows in GSM8K's schema plus `level`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
    rng, rows, seen = random.Random(f"chains-{split}-{seed}"), [], set()
    while len(rows) < n:
        level = levels[len(rows) % len(levels)]
        question, answer = problem(rng, level)
        if split_of(question) == split and question not in seen:
            seen.add(question)
            rows.append({"question": question, "answer": f"#### {answer}", "level": level})
    return rows


def load(source: str, data_file: str | None) -> list[Example]:
    """The fixed evaluation set: 500 test-split problems (seed 0), or a file in the same schema."""
    rows = read_file(data_file) if data_file else generate(500, "test", seed=0)
    return [
        Example(f"chains-{i}", r["question"], r["answer"].split("####")[-1].strip(), {"level": r.get("level")})
        for i, r in enumerate(rows)
    ]


TASK = register(Task("chains", "(generated)", ANSWER_FORMAT, load, gsm8k_score))
