"""Rewards in TRL's signature, `f(prompts, completions, **columns) -> list[float]`, built from task scorers.

The dataset carries a `gold` column, which TRL passes to every reward function by name, so TRL's own
reward functions can be mixed in unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from latentrl.tasks import Example, Task
from latentrl.tasks.answers import normalize_number

Reward = Callable[..., list[float]]


def _text(completion) -> str:
    return completion if isinstance(completion, str) else completion[-1]["content"]


def correctness_reward(task: Task) -> Reward:
    """1 for a correct final answer (flexible reading), else 0. Code tasks score in the sandbox."""

    def correctness(prompts: list, completions: list, gold: list[str], **_) -> list[float]:
        examples = [Example(str(i), p if isinstance(p, str) else "", g) for i, (p, g) in enumerate(zip(prompts, gold))]
        return [float(task.score(_text(c), ex).correct) for c, ex in zip(completions, examples)]

    correctness.__name__ = f"{task.name}_correct"
    return correctness


def format_reward(task: Task) -> Reward:
    """1 when the answer is given in the requested format (strict reading found), else 0."""

    def answer_format(prompts: list, completions: list, gold: list[str], **_) -> list[float]:
        return [float(task.score(_text(c), Example("0", "", g)).strict is not None) for c, g in zip(completions, gold)]

    answer_format.__name__ = f"{task.name}_format"
    return answer_format


def closeness_reward(task: Task, scale: float = 10.0) -> Reward:
    """Dense signal for numeric answers: 1 - min(|answer - gold| / scale, 1); 0 without a number.

    Small models rarely get exact answers early on; partial credit gives GRPO groups reward variance."""

    def closeness(prompts: list, completions: list, gold: list[str], **_) -> list[float]:
        out = []
        for c, g in zip(completions, gold):
            flexible = task.score(_text(c), Example("0", "", g)).flexible
            pred, target = normalize_number(flexible or ""), normalize_number(g)
            out.append(0.0 if pred is None or target is None else 1 - min(abs(pred - target) / scale, 1.0))
        return out

    closeness.__name__ = f"{task.name}_closeness"
    return closeness
