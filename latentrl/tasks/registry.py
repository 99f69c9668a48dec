"""Tasks: where a benchmark's questions come from, how its answer is asked for, how it is scored."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

FAMILIES = ("math", "choice", "code")  # how an answer is asked for: a number, a letter, a program


class DataUnavailable(RuntimeError):
    """A task's data could not be found; the message names the hub id and the --data-file option."""


@dataclass(frozen=True)
class Example:
    id: str
    question: str  # the full text the agents see (multiple-choice options included)
    gold: str  # a number, a letter, or for code tasks the entry point
    meta: dict = field(default_factory=dict, compare=False)  # task-specific: tests, option order, ...


@dataclass(frozen=True)
class Score:
    strict: str | None  # answer in the requested format (e.g. boxed), or None
    flexible: str | None  # best-effort answer, or None
    correct_strict: bool
    correct: bool  # flexible reading; the headline number
    error: str | None = None  # the scorer could not judge (the code sandbox did not start): neither right nor wrong


@dataclass(frozen=True)
class Task:
    name: str
    hub_id: str
    answer_format: str  # appended to the final agent's prompt
    load: Callable[[str, str | None], list[Example]]  # (source, data_file) -> examples
    score: Callable[[str, Example], Score]  # (output text, example) -> score
    executes_code: bool = False  # scoring runs generated code (sandboxed, opt-in)
    on_hub: bool = True  # False: no hub copy (generated data), so `auto` means the offline set
    offline_name: str | None = None  # the name results on the offline copy are reported under, when that
    # copy is not the benchmark itself (offline MBPP+ holds only MBPP's base tests: 'mbpp_base')
    family: str = "math"  # one of FAMILIES: picks the final agent's instruction in a prompt set that has one

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"task '{self.name}': family must be one of {FAMILIES}, got '{self.family}'")


TASKS: dict[str, Task] = {}


def score_many(task: Task, texts: list[str], examples: list[Example]) -> list[Score]:
    """Score outputs in order; code tasks fan out over a pool (each score runs a sandboxed process)."""
    if not task.executes_code:
        return [task.score(t, ex) for t, ex in zip(texts, examples)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return list(pool.map(task.score, texts, examples))


def register(task: Task) -> Task:
    TASKS[task.name] = task
    return task


def all_tasks() -> dict[str, Task]:
    import latentrl.tasks.catalog  # noqa: F401

    return TASKS


def get_task(name: str) -> Task:
    import latentrl.tasks.catalog  # noqa: F401  (task modules register themselves)

    if name not in TASKS:
        raise ValueError(f"unknown task '{name}'; choose one of {sorted(TASKS)}")
    return TASKS[name]
