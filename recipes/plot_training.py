"""Plot a GRPO run's reward curve (and its parts) from the trainer state, without W&B.

.venv/bin/python recipes/plot_training.py runs/grpo-arithmetic-cpu docs/grpo_arithmetic_cpu.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def log_history(run_dir: Path) -> list[dict]:
    """The newest trainer_state.json under run_dir (checkpoints included)."""
    states = sorted(run_dir.rglob("trainer_state.json"), key=lambda p: json.loads(p.read_text())["global_step"])
    if not states:
        raise SystemExit(f"no trainer_state.json under {run_dir}")
    return [h for h in json.loads(states[-1].read_text())["log_history"] if "reward" in h]


def moving_average(values: list[float], window: int) -> list[float]:
    return [
        sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
        for i in range(len(values))
    ]


def main(run_dir: str, out: str, window: int = 5) -> None:
    history = log_history(Path(run_dir))
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [h["reward"] for h in history], "o", alpha=0.35, label="reward (weighted sum), per step")
    ax.plot(steps, moving_average([h["reward"] for h in history], window), "-", label=f"moving average ({window})")
    for key in sorted(k for k in history[0] if k.startswith("rewards/") and k.endswith("/mean")):
        ax.plot(steps, moving_average([h[key] for h in history], window), "--", label=key.split("/")[1])
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("reward")
    ax.set_title(Path(run_dir).name)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"wrote {out} ({len(steps)} steps)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
