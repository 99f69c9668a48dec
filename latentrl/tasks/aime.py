"""AIME 2024 and AIME 2025 (30 problems each); every answer is an integer from 0 to 999.

Hub rows: problem, answer (and id). No offline copy ships: offline, pass --data-file.
"""

from __future__ import annotations

from latentrl.tasks.answers import extract_math, integer_answer
from latentrl.tasks.registry import Example, Score, Task, register
from latentrl.tasks.sources import hub_rows, load_rows

ANSWER_FORMAT = "Reason step by step, then put the final answer (an integer from 0 to 999) in \\boxed{}."


def to_example(row: dict, i: int, hub_id: str) -> Example:
    gold = integer_answer(str(row["answer"]))
    if gold is None:
        raise ValueError(f"{hub_id} row {i}: answer {row['answer']!r} is not an integer from 0 to 999")
    return Example(str(row.get("id", i)), str(row["problem"]).strip(), str(gold))


def score(text: str, example: Example) -> Score:
    strict, flexible = extract_math(text)
    gold = int(example.gold)
    return Score(strict, flexible, integer_answer(strict) == gold, integer_answer(flexible) == gold)


def make(name: str, hub_id: str) -> Task:
    def load(source: str, data_file: str | None) -> list[Example]:
        rows = load_rows(source, data_file, lambda: hub_rows(hub_id, None, "train"), None, hub_id)
        return [to_example(r, i, hub_id) for i, r in enumerate(rows)]

    return register(Task(name, hub_id, ANSWER_FORMAT, load, score))


AIME2024 = make("aime2024", "HuggingFaceH4/aime_2024")
AIME2025 = make("aime2025", "yentinglin/aime_2025")
