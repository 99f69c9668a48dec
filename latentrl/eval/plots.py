"""Figures of a sweep, from its summaries alone (no W&B needed): accuracy vs m, accuracy vs cost, tokens vs m.

Every point carries its 95% interval (Wilson for one seed, a t-interval across seeds); methods without
latent steps (single, text_mas) are drawn as horizontal bands so they read as baselines.
"""

from __future__ import annotations

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


def train_eval_heatmap(points: list[dict], out: Path) -> Path | None:
    """Accuracy of adapters trained at m (rows) and evaluated at m (columns); None without trained points."""
    trained = [p for p in points if p.get("train_latent_steps") is not None]
    if not trained:
        return None
    rows = sorted({p["train_latent_steps"] for p in trained})
    cols = sorted({p["latent_steps"] for p in trained})
    grid = [[float("nan")] * len(cols) for _ in rows]
    for p in trained:
        grid[rows.index(p["train_latent_steps"])][cols.index(p["latent_steps"])] = p["accuracy"]
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 2.5, 0.9 * len(rows) + 2))
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=max(1e-9, max(p["accuracy"] for p in trained)))
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="w")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel("eval m")
    ax.set_ylabel("train m")
    ax.set_title("accuracy: train m x eval m")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    path = out / "train_m_x_eval_m.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
