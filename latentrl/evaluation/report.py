"""Markdown tables of run summaries; runs of several seeds of one point are aggregated."""

from __future__ import annotations

import json
from pathlib import Path

from latentrl.evaluation.stats import BEFORE, aggregate, point_key

COLUMNS = (
    ("task", "task", "{}"),
    ("method", "method", "{}"),
    ("topology", "topology", "{}"),
    ("train m", "train_latent_steps", "{}"),
    ("m", "latent_steps", "{}"),
    ("seeds", "seeds", "{}"),
    ("n", "n", "{:g}"),
    ("acc", "accuracy", "{:.3f}"),
    ("acc 95% CI", "accuracy_ci95", "[{:.2f}, {:.2f}]"),
    ("strict acc", "accuracy_strict", "{:.3f}"),
    ("invalid fmt", "invalid_format_rate", "{:.2f}"),
    ("out tokens/q", "output_tokens", "{:.1f}"),
    ("forwards/q", "forwards", "{:.1f}"),
    ("s/q", "seconds_per_question", "{:.2f}"),
)
# Settings shown in a `variant` column when a run left their default (memory_control has its own column).
VARIANT = {k: v for k, v in BEFORE.items() if k != "memory_control"}


def _cell(fmt: str, value) -> str:
    if value is None:
        return "-"
    return fmt.format(*value) if isinstance(value, list | tuple) else fmt.format(value)


def find_summaries(dirs: list[str]) -> list[dict]:
    paths = sorted({p for d in dirs for p in Path(d).rglob("summary.json")})
    if not paths:
        raise FileNotFoundError(f"no summary.json under {', '.join(dirs)}")
    return [json.loads(p.read_text()) for p in paths]


def group_seeds(summaries: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for s in summaries:
        groups.setdefault(point_key(s), []).append(s)
    return [aggregate(g) for g in groups.values()]


def variant(summary: dict) -> str | None:
    """What a run changed from the default semantics, prompts and expert positions ('semantics=reference')."""
    changed = [f"{k}={summary.get(k, v)}" for k, v in VARIANT.items() if summary.get(k, v) != v]
    return ", ".join(changed) or None


def markdown_table(summaries: list[dict]) -> str:
    """One row per summary; a `variant` column appears when a run left the default semantics or prompts, a
    `memory` column when one ran a memory control and a `budget` column when budgets differ, so two rows that
    `group_seeds` kept apart never look alike."""
    columns = list(COLUMNS)
    summaries = [{**s, "variant": variant(s), "memory_control": s.get("memory_control", "none")} for s in summaries]
    if len({s.get("max_new_tokens") for s in summaries}) > 1:  # budgets differ: say which is which
        columns.insert(5, ("budget", "max_new_tokens", "{}"))
    if any(s["memory_control"] != "none" for s in summaries):
        columns.insert(5, ("memory", "memory_control", "{}"))
    if any(s["variant"] for s in summaries):
        columns.insert(3, ("variant", "variant", "{}"))
    head = "| " + " | ".join(c[0] for c in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    rows = ["| " + " | ".join(_cell(fmt, s.get(key)) for _, key, fmt in columns) + " |" for s in summaries]
    return "\n".join([head, rule, *rows])
