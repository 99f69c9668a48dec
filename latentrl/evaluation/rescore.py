"""Score a finished run's saved outputs again, with the current extraction and scorers.

Why: generation is the cost of an evaluation, scoring is not. When extraction is fixed (an empty `\\boxed{}`
used to hide the answer sentence after it), runs made before the fix are brought up to date from their
saved texts, not generated again. The rows' answers and correctness, and summary.json, are rewritten;
the texts, every cost measurement and the adapter's recorded train m stay as they were. A run still
being written is refused: it has no summary, or fewer rows than its summary counts.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from latentrl.evaluation import rundir
from latentrl.evaluation.config import ConfigError, EvalConfig
from latentrl.evaluation.rundir import data_change, read_summary, write_summary
from latentrl.evaluation.runner import load_task
from latentrl.tasks.registry import score_many

SCORED = ("pred", "pred_strict", "correct", "correct_strict", "error")


def saved_config(out: Path) -> EvalConfig:
    """The run's EvalConfig from its config.json (keys an older run did not record take their defaults)."""
    path = out / "config.json"
    if not path.exists():
        raise ConfigError("no config.json, so not an evaluation run directory")
    saved = json.loads(path.read_text())
    names = {f.name for f in dataclasses.fields(EvalConfig)}
    return EvalConfig(**{k: v for k, v in saved.items() if k in names})


def rescore(out: Path, allow_code_execution: bool = False) -> tuple[dict, dict, int]:
    """(summary before, summary after, rows whose score changed) for the finished run in `out`."""
    cfg = saved_config(out)
    # Code runs only on this command's own opt-in, whatever the original run was given.
    cfg.output, cfg.allow_code_execution = str(out), allow_code_execution
    rows = list(rundir.read_all(out).values())
    before = read_summary(out)
    if before is None and (out / "summary.json").exists():
        raise ConfigError("summary.json is not a run summary (rerun the run's command to rebuild it)")
    if before is None or len(rows) < before["n"]:
        raise ConfigError("unfinished run (rerun its command to finish it, then rescore)")
    task, examples, data = load_task(cfg)
    if change := data_change(before, data):
        raise ConfigError(f"its data changed since the run ({change})")
    by_id = {ex.id: ex for ex in examples}
    todo = [r for r in rows if r["id"] in by_id]
    if broken := [r["id"] for r in todo if not isinstance(r.get("text"), str)]:
        raise ConfigError(f"{len(broken)} prediction rows have no text (first: {broken[0]})")
    scores = score_many(task, [r["text"] for r in todo], [by_id[r["id"]] for r in todo])
    changed = 0
    for row, s in zip(todo, scores):
        new = dict(zip(SCORED, (s.flexible, s.strict, s.correct, s.correct_strict, s.error)))
        changed += any(row.get(k) != v for k, v in new.items())
        row.update(new)
    if changed:
        rundir.rewrite(out, rows)
    wanted = {ex.id for ex in examples[: cfg.limit]}
    rows = [r for r in rows if r["id"] in wanted]
    training = {k: before.get(k) for k in ("train_latent_steps", "train_memory_control")}
    after = write_summary(cfg, data, out, rows, before, training, relog=changed > 0)
    return before, after, changed
