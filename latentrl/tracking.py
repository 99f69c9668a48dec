"""Weights & Biases logging that never blocks: offline unless logged in and the server answers.

Offline runs land in `<run dir>/wandb/` and can be uploaded later with `wandb sync`.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from latentrl.hub import reachable


class TrackingError(RuntimeError):
    """W&B was asked for but cannot be used."""


def _logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    online = _logged_in() and reachable(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    return "online" if online else "offline"


def start_run(out: Path, project: str, group: str | None, name: str, config: dict[str, Any]):
    if os.environ.get("WANDB_MODE") == "":  # set but empty: wandb itself would reject it
        del os.environ["WANDB_MODE"]
    try:
        import wandb
    except ImportError as err:
        raise TrackingError("--wandb needs the wandb package: pip install 'latentrl[dev]' (or wandb==0.31.0)") from err
    return wandb.init(
        project=project, group=group, name=name, config=config, dir=str(out), mode=wandb_mode(),
        settings=wandb.Settings(silent=True, init_timeout=60),
    )  # fmt: skip


def log_eval(out: Path, project: str, group: str | None, config: dict, summary: dict, rows: list[dict]) -> str:
    """One W&B run per evaluation: config, summary metrics, a per-question table. Returns the mode used."""
    import wandb

    name = out.name
    run = start_run(out, project, group, name, config)
    run.summary.update({k: v for k, v in summary.items() if isinstance(v, int | float | str)})
    columns = ["id", "correct", "correct_strict", "pred", "gold", "output_tokens", "forwards", "latent_steps_total",
               "memory_control", "donor", "text"]  # fmt: skip
    run.log({"predictions": wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])})
    mode = run.settings.mode
    run.finish()
    return mode


SWEEP_COLUMNS = ["task", "method", "topology", "latent_steps", "seeds", "accuracy", "ci_low", "ci_high"]
SWEEP_COLUMNS += ["output_tokens", "forwards", "kv_length", "seconds_per_question", "latent_norm", "latent_cos"]


def log_sweep(out: Path, project: str, group: str | None, points: list[dict]) -> str:
    """One summary run for a sweep: the table of points and accuracy-vs-m line plots per task."""
    import wandb

    run = start_run(out, project, group, f"{group or out.name}-summary", {"points": len(points)})
    rows = [[p.get(c) for c in SWEEP_COLUMNS[:5]] + [p["accuracy"], *p["accuracy_ci95"]] + [p.get(c) for c in
            SWEEP_COLUMNS[8:]] for p in points]  # fmt: skip
    run.log({"sweep": wandb.Table(columns=SWEEP_COLUMNS, data=rows)})
    for task in sorted({p["task"] for p in points}):
        latent = [p for p in points if p["task"] == task and p["method"] == "latent_mas"]
        ms = sorted({p["latent_steps"] for p in latent})
        if not ms:
            continue
        series = {}
        for p in latent:
            series.setdefault(p["topology"], {})[p["latent_steps"]] = p["accuracy"]
        for p in points:  # baselines: flat lines over the same m axis
            if p["task"] == task and p["method"] != "latent_mas":
                series[f"{p['method']} ({p['topology']})"] = dict.fromkeys(ms, p["accuracy"])
        keys = sorted(series)
        plot = wandb.plot.line_series(xs=ms, ys=[[series[k].get(m) for m in ms] for k in keys], keys=keys,
                                      title=f"{task}: accuracy vs latent steps", xname="latent steps m")  # fmt: skip
        run.log({f"{task}/accuracy_vs_m": plot})
    mode = run.settings.mode
    run.finish()
    return mode
