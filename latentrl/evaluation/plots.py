"""Figures of a sweep, from its summaries alone (no W&B needed): accuracy vs m, accuracy vs cost, tokens vs m.

Every point carries its 95% interval (Wilson for one seed, a t-interval across seeds); methods without
latent steps (single, text_mas) are drawn as horizontal bands so they read as baselines.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _series(points: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """(label, color, points sorted by m) per method/topology; one fixed color per series in every figure."""
    series: dict[str, list[dict]] = {}
    for p in points:
        label = p["method"] if p["method"] == "single" else f"{p['method']} ({p['topology']})"
        series.setdefault(label, []).append(p)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return [
        (label, colors[i % len(colors)], sorted(series[label], key=lambda p: p["latent_steps"]))
        for i, label in enumerate(sorted(series))
    ]


def _errors(points: list[dict]) -> list[list[float]]:
    return [
        [p["accuracy"] - p["accuracy_ci95"][0] for p in points],
        [p["accuracy_ci95"][1] - p["accuracy"] for p in points],
    ]


def accuracy_vs_m(points: list[dict], ax) -> None:
    ms = sorted({p["latent_steps"] for p in points if p["method"] == "latent_mas"}) or [0]
    for label, color, pts in _series(points):
        if pts[0]["method"] == "latent_mas":
            ax.errorbar([p["latent_steps"] for p in pts], [p["accuracy"] for p in pts], yerr=_errors(pts), marker="o",
                        capsize=3, label=label, color=color)  # fmt: skip
        else:
            ax.axhline(pts[0]["accuracy"], linestyle="--", label=label, color=color)
            ax.axhspan(*pts[0]["accuracy_ci95"], color=color, alpha=0.12)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.set_xlabel("latent steps m")
    ax.set_ylabel("accuracy (95% CI)")


def accuracy_vs_cost(points: list[dict], ax, cost: str = "forwards") -> None:
    for label, color, pts in _series(points):
        ax.errorbar([p[cost] for p in pts], [p["accuracy"] for p in pts], yerr=_errors(pts), marker="o", capsize=3,
                    linestyle="-" if len(pts) > 1 else "none", label=label, color=color)  # fmt: skip
    ax.set_xlabel({"forwards": "forward passes / question", "seconds_per_question": "seconds / question"}[cost])
    ax.set_ylabel("accuracy (95% CI)")


def tokens_vs_m(points: list[dict], ax) -> None:
    for label, color, pts in _series(points):
        if pts[0]["method"] == "latent_mas":
            ax.plot([p["latent_steps"] for p in pts], [p["output_tokens"] for p in pts], marker="o", label=label,
                    color=color)  # fmt: skip
        else:
            ax.axhline(pts[0]["output_tokens"], linestyle="--", label=label, color=color)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("latent steps m")
    ax.set_ylabel("output tokens / question")


FIGURES = {
    "accuracy_vs_m": accuracy_vs_m,
    "accuracy_vs_forwards": lambda pts, ax: accuracy_vs_cost(pts, ax, "forwards"),
    "accuracy_vs_seconds": lambda pts, ax: accuracy_vs_cost(pts, ax, "seconds_per_question"),
    "tokens_vs_m": tokens_vs_m,
}


def draw_all(points: list[dict], out: Path) -> list[Path]:
    """One PNG per (task, figure) under `out`; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for task in sorted({p["task"] for p in points}):
        task_points = [p for p in points if p["task"] == task]
        for name, draw in FIGURES.items():
            fig, ax = plt.subplots(figsize=(6.4, 4))
            draw(task_points, ax)
            ax.set_title(f"{task}: {name.replace('_', ' ')}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            path = out / f"{task}_{name}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written


def train_eval_heatmap(points: list[dict], out: Path, base: list[dict] | None = None) -> Path | None:
    """Accuracy (95% interval below it) of adapters trained at m (rows) evaluated at m (columns); `base`, the
    untrained model's points, is drawn as a first row. None without trained points."""
    trained = [p for p in points if p.get("train_latent_steps") is not None]
    if not trained:
        return None
    labels = sorted({p["train_latent_steps"] for p in trained})
    cols = sorted({p["latent_steps"] for p in trained})
    rows = ([("untrained", base)] if base else []) + [
        (str(t), [p for p in trained if p["train_latent_steps"] == t]) for t in labels
    ]
    cells = [{p["latent_steps"]: p for p in pts} for _, pts in rows]
    grid = [[c[m]["accuracy"] if m in c else float("nan") for m in cols] for c in cells]
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2.5, 0.9 * len(rows) + 2))
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=max(1e-9, max(p["accuracy"] for p in trained)))
    for i, c in enumerate(cells):
        for j, m in enumerate(cols):
            if m in c:
                lo, hi = c[m]["accuracy_ci95"]
                ax.text(j, i, f"{c[m]['accuracy']:.2f}\n[{lo:.2f},{hi:.2f}]", ha="center", va="center", color="w",
                        fontsize=7)  # fmt: skip
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.set_xlabel("eval m")
    ax.set_ylabel("train m")
    ax.set_title("accuracy: train m x eval m (95% CI)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    path = out / "train_m_x_eval_m.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log_history(run_dir: Path) -> list[dict]:
    """The per-step logs of a GRPO run: the newest trainer_state.json under run_dir (checkpoints included)."""
    states = sorted(run_dir.rglob("trainer_state.json"), key=lambda p: json.loads(p.read_text())["global_step"])
    if not states:
        raise FileNotFoundError(f"no trainer_state.json under {run_dir}")
    return [h for h in json.loads(states[-1].read_text())["log_history"] if "reward" in h]


def moving_average(values: list[float], window: int) -> list[float]:
    return [statistics.fmean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]


def training_curve(run_dir: Path, out: Path, window: int = 5, title: str | None = None) -> Path:
    """A GRPO run's reward per step, its moving average and each reward part's (correctness among them)."""
    history = log_history(run_dir)
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [h["reward"] for h in history], "o", alpha=0.35, label="reward (weighted sum), per step")
    ax.plot(steps, moving_average([h["reward"] for h in history], window), "-", label=f"moving average ({window})")
    for key in sorted(k for k in history[0] if k.startswith("rewards/") and k.endswith("/mean")):
        ax.plot(steps, moving_average([h[key] for h in history], window), "--", label=key.split("/")[1])
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("reward")
    ax.set_title(title or run_dir.name)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
