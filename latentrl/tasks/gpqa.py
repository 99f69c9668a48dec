"""GPQA Diamond: 198 graduate-level science questions with four options.

Hub rows (`fingertap/GPQA-Diamond`) carry the options inside the question and the gold letter. Rows in the
original schema (`Idavidrein/gpqa`, diamond: Question, Correct Answer, Incorrect Answer 1..3) give the correct
answer separately; their options are shuffled with an RNG keyed on the row's id, so the order is fixed,
reproducible and logged in `Example.meta["options"]`.
"""

from __future__ import annotations

from latentrl.tasks import choice
from latentrl.tasks.registry import Example, Task, register
from latentrl.tasks.sources import hub_rows, load_rows

HUB_ID = "fingertap/GPQA-Diamond"


def to_example(row: dict, i: int) -> Example:
    if "Correct Answer" in row:
        rid = str(row.get("Record ID") or i)
        answers = [
            row["Correct Answer"],
            row["Incorrect Answer 1"],
            row["Incorrect Answer 2"],
            row["Incorrect Answer 3"],
        ]
        options, correct = choice.shuffled([str(a).strip() for a in answers], 0, key=f"gpqa/{rid}")
        return choice.example(rid, row["Question"], options, correct)
    gold = str(row["answer"]).strip().upper()
    if gold not in choice.LETTERS[:4]:
        raise ValueError(f"{HUB_ID} row {i}: answer {row['answer']!r} is not a letter A-D")
    return Example(str(row.get("id", i)), str(row["question"]).strip(), gold)


def load(source: str, data_file: str | None) -> list[Example]:
    rows = load_rows(source, data_file, lambda: hub_rows(HUB_ID, None, "test"), None, HUB_ID)
    return [to_example(r, i) for i, r in enumerate(rows)]


TASK = register(Task("gpqa_diamond", HUB_ID, choice.ANSWER_FORMAT, load, choice.score, family="choice"))
