"""Summaries of predictions: accuracy with 95% intervals, cost per question, aggregation over seeds."""

from __future__ import annotations

import math
import statistics

# The keys that identify an evaluation point: runs equal in all of them are seeds of one point. Read by
# the report, `aggregate` and the study script, so no consumer can merge runs another keeps apart.
POINT = (
    "task", "method", "topology", "latent_steps", "memory_control", "max_new_tokens", "model", "adapter",
    "train_latent_steps", "train_memory_control", "semantics", "prompts", "expert_positions",
)  # fmt: skip
# What a summary written before a key was recorded ran with, so older runs group with their equals.
BEFORE = {"semantics": "current", "prompts": "default", "expert_positions": "shared", "memory_control": "none"}


def point_key(summary: dict) -> tuple:
    """The identity of a run's point (`POINT`), older summaries read with the defaults they ran with."""
    return tuple(summary.get(k, BEFORE.get(k)) for k in POINT)


# Two-sided 97.5% quantiles of Student's t; between listed df the next lower df is used (conservative).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}  # fmt: skip


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n trials (sensible at small n and at 0 or n)."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def t_quantile(df: int) -> float:
    return _T975[max(d for d in _T975 if d <= df)] if df < 120 else 1.96


def seed_interval(values: list[float]) -> tuple[float, float]:
    """95% t-interval of the mean over seeds (one value per seed)."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = t_quantile(len(values) - 1) * sd / math.sqrt(len(values))
    return (max(0.0, mean - half), min(1.0, mean + half))


def summarize(rows: list[dict]) -> dict:
    """Per-question means and totals; keys are the ones reports and dashboards read.

    A row the scorer could not judge (`error`: the code sandbox did not start) is neither right nor wrong:
    it is counted under `errors` and left out of the accuracies, and a rerun of `rescore` judges it again."""
    errors = sum(1 for r in rows if r.get("error"))
    judged = [r for r in rows if not r.get("error")]
    n, k = len(rows), len(judged)

    def mean(key: str) -> float:
        return sum(r[key] for r in rows) / n if n else 0.0

    correct = sum(r["correct"] for r in judged)
    agents: dict[str, int] = {}
    for r in rows:
        for role, t in r["tokens_per_agent"].items():
            agents[role] = agents.get(role, 0) + t
    return {
        "n": k,
        "errors": errors,
        "accuracy": correct / k if k else 0.0,
        "accuracy_ci95": wilson(correct, k),
        "accuracy_strict": sum(r["correct_strict"] for r in judged) / k if k else 0.0,
        "invalid_format_rate": sum(r["pred_strict"] is None for r in judged) / k if k else 0.0,
        "output_tokens": mean("output_tokens"),
        "output_tokens_total": sum(r["output_tokens"] for r in rows),
        "tokens_per_agent": {role: t / n for role, t in agents.items()},
        "tokens_per_agent_total": agents,
        "forwards": mean("forwards"),
        "latent_steps_total": mean_of(rows, "latent_steps_total"),
        "kv_length": mean_of(rows, "kv_length"),
        "kv_bytes": mean_of(rows, "kv_bytes"),
        "latent_norm": mean_of(rows, "latent_norm"),
        "latent_cos": mean_of(rows, "latent_cos"),
        "seconds_per_question": mean("seconds"),
        "wall_clock_s": sum(r["seconds"] for r in rows),
    }


def mean_of(rows: list[dict], key: str) -> float | None:
    """Mean of a field over the rows that have it (None when none do, e.g. latent stats of a text method)."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def aggregate(summaries: list[dict]) -> dict:
    """One row from the runs of several seeds of the same point: means, and the interval across seeds."""
    first = summaries[0]
    if len(summaries) == 1:
        return {**first, "seeds": 1}
    acc = [s["accuracy"] for s in summaries]
    out = dict(zip(POINT, point_key(first)))
    for key in ("n", "accuracy_strict", "invalid_format_rate", "output_tokens", "forwards", "seconds_per_question"):
        out[key] = statistics.fmean(s[key] for s in summaries)
    out.update(seeds=len(summaries), accuracy=statistics.fmean(acc), accuracy_ci95=seed_interval(acc))
    out["accuracy_sd"] = statistics.stdev(acc)
    return out


def paired_difference(a: dict[str, bool], b: dict[str, bool]) -> tuple[float, tuple[float, float], int]:
    """Accuracy of a minus accuracy of b on the questions both answered, with a 95% interval.

    Two methods run on the same questions are correlated (easy questions are easy for both), so the
    interval of the per-question differences is much narrower than two independent Wilson intervals
    would suggest; it is what says whether a change of method changed anything."""
    ids = sorted(a.keys() & b.keys())
    return (*mean_interval([float(a[i]) - float(b[i]) for i in ids]), len(ids))


def trend(runs: dict[int, dict[str, bool]]) -> tuple[float, tuple[float, float], int]:
    """Change of accuracy per doubling of 1 + m ({m: {question id: correct}}), with a 95% interval.

    One test of "accuracy moves with m", set before looking, instead of five comparisons with m = 0 (one
    of five can clear its interval by chance). Each question's least-squares slope of correctness on
    log2(1 + m) is averaged over the questions every run answered; questions are the independent units,
    so the t-interval of the per-question slopes is valid, and their mean is the slope of the accuracies."""
    ms = sorted(runs)
    ids = sorted(set.intersection(*(set(runs[m]) for m in ms))) if len(ms) > 1 else []
    if not ids:
        return 0.0, (0.0, 0.0), 0
    xs = [math.log2(1 + m) for m in ms]
    centre = statistics.fmean(xs)
    sxx = sum((x - centre) ** 2 for x in xs)
    slopes = [sum((x - centre) * float(runs[m][i]) for x, m in zip(xs, ms)) / sxx for i in ids]
    return (*mean_interval(slopes), len(ids))


def mean_interval(values: list[float]) -> tuple[float, tuple[float, float]]:
    """Mean of per-question values and its 95% t-interval (questions are the independent units)."""
    if not values:
        return 0.0, (0.0, 0.0)
    mean = statistics.fmean(values)
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, (mean - half, mean + half)
