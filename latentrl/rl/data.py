"""Training prompts: GSM8K train from the hub, a local file, or generated arithmetic (offline)."""

from __future__ import annotations

import logging

from datasets import Dataset

from latentrl.hub import hub_reachable
from latentrl.tasks.arithmetic import generate
from latentrl.tasks.gsm8k import gold_of
from latentrl.tasks.sources import hub_rows, read_file

log = logging.getLogger(__name__)


def train_dataset(source: str, data_file: str | None, size: int, seed: int) -> Dataset:
    """Rows with `prompt` (the question) and `gold`, the columns the rollout and rewards read."""
    if source == "file":
        rows = read_file(data_file)
    elif source == "arithmetic":
        rows = generate(size, seed)
    elif hub_reachable():
        rows = hub_rows("openai/gsm8k", "main", "train")
    elif source == "hub":
        raise RuntimeError("train_data=hub but the hub is not reachable; use train_data=arithmetic or file")
    else:
        log.warning("hub unreachable: training on %d generated arithmetic problems", size)
        rows = generate(size, seed)
    return Dataset.from_list([{"prompt": r["question"], "gold": gold_of(r)} for r in rows])
