"""Training prompts: GSM8K train from the hub, a local file, generated arithmetic or chained word problems."""

from __future__ import annotations

import json
import logging

from datasets import Dataset

from latentrl.hub import hub_reachable
from latentrl.latent.controls import donors
from latentrl.tasks import chains, get_task
from latentrl.tasks.arithmetic import generate
from latentrl.tasks.gsm8k import gold_of
from latentrl.tasks.sources import hub_rows, read_file

log = logging.getLogger(__name__)


def train_dataset(source: str, data_file: str | None, size: int, seed: int, task: str = "gsm8k") -> Dataset:
    """Rows with `prompt` (the question), `gold` and `meta` (JSON: tests for code tasks), the columns the
    rollout and the rewards read.

    Sources: `task` (the task's own loader: its hub split, offline copy or data_file), `file` (GSM8K
    schema), `arithmetic` (generated), `chains` (the train split of the chains task: never a test problem),
    `hub` (GSM8K train), `auto` (hub if reachable, else arithmetic).
    """
    if source == "task":
        examples = get_task(task).load("file" if data_file else "auto", data_file)
        rows = [{"prompt": ex.question, "gold": ex.gold, "meta": json.dumps(ex.meta)} for ex in examples]
        return Dataset.from_list(rows)
    if source == "file":
        rows = read_file(data_file)
    elif source == "arithmetic":
        rows = generate(size, seed)
    elif source == "chains":
        rows = chains.generate(size, "train", seed)
    elif hub_reachable():
        rows = hub_rows("openai/gsm8k", "main", "train")
    elif source == "hub":
        raise RuntimeError("train_data=hub but the hub is not reachable; use train_data=arithmetic or file")
    else:
        log.warning("hub unreachable: training on %d generated arithmetic problems", size)
        rows = generate(size, seed)
    return Dataset.from_list([{"prompt": r["question"], "gold": gold_of(r), "meta": ""} for r in rows])


def with_donors(data: Dataset, seed: int) -> Dataset:
    """The data with a `memory_prompt` column: the prompt whose workers' memory the `shuffled` control
    gives each row (a derangement of the distinct prompts, fixed by the seed; `latent.controls.donors`)."""
    donor = donors(data["prompt"], seed)
    return data.add_column("memory_prompt", [donor[p] for p in data["prompt"]])
