"""Rewards in TRL's signature, `f(prompts, completions, **columns) -> list[float | None]`, from task scorers.

The dataset carries `gold` (and, for code tasks, `meta`: the tests as JSON) columns, which TRL passes to
every reward function by name, so TRL's own reward functions can be mixed in unchanged. Code is scored in
the sandbox (separate processes, a pool of them), never in the trainer process.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from latentrl.tasks import Example, Score, Task
from latentrl.tasks.answers import boxed, normalize_number, strip_think
from latentrl.tasks.registry import score_many

Reward = Callable[..., list[float | None]]


def _text(completion) -> str:
    return completion if isinstance(completion, str) else completion[-1]["content"]


def score_all(task: Task, completions: list, gold: list[str], meta: list[str] | None = None) -> list[Score]:
    """Score completions against their examples; code tasks fan out over sandbox processes."""
    metas = [json.loads(m) if m else {} for m in meta] if meta else [{} for _ in gold]
    examples = [Example(str(i), "", g, m) for i, (g, m) in enumerate(zip(gold, metas))]
    return score_many(task, [_text(c) for c in completions], examples)


def correctness_reward(task: Task) -> Reward:
    """1 for a correct final answer (flexible reading; code: the tests pass), else 0; None where the scorer
    could not judge (the code sandbox did not start): TRL leaves that completion out instead of punishing it."""

    def correctness(prompts: list, completions: list, gold: list[str], meta: list[str] | None = None, **_):
        return [None if s.error else float(s.correct) for s in score_all(task, completions, gold, meta)]

    correctness.__name__ = f"{task.name}_correct"
    return correctness


def format_reward(task: Task) -> Reward:
    """1 when the answer is given in the requested format (strict reading found) and boxed once, else 0.

    Boxes holding different values earn nothing: a GRPO run on chains learned to box every operand
    ("28 * \\boxed{3} = 84") for this reward while its correctness stayed flat (docs/study_latent_steps.md)."""

    def answer_format(prompts: list, completions: list, gold: list[str], meta: list[str] | None = None, **_):
        scores = score_all(task, completions, gold, meta)
        once = [len(set(boxed(strip_think(_text(c))))) <= 1 for c in completions]
        return [float(s.strict is not None and one) for s, one in zip(scores, once)]

    answer_format.__name__ = f"{task.name}_format"
    return answer_format


def closeness_reward(task: Task, scale: float = 10.0) -> Reward:
    """Dense signal for numeric answers: 1 - min(|answer - gold| / scale, 1); 0 without a number.

    Small models rarely get exact answers early on; partial credit gives GRPO groups reward variance."""

    def closeness(prompts: list, completions: list, gold: list[str], **_) -> list[float]:
        out = []
        for s, g in zip(score_all(task, completions, gold), gold):
            pred, target = normalize_number(s.flexible or ""), normalize_number(g)
            out.append(0.0 if pred is None or target is None else 1 - min(abs(pred - target) / scale, 1.0))
        return out

    closeness.__name__ = f"{task.name}_closeness"
    return closeness
