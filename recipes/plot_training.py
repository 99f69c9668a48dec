"""Plot a GRPO run's reward curve (and its parts) from the trainer state, without W&B.

.venv/bin/python recipes/plot_training.py runs/grpo-arithmetic-cpu docs/grpo_arithmetic_cpu.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from latentrl.evaluation.plots import log_history, training_curve

if __name__ == "__main__":
    try:
        run_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
        path = training_curve(run_dir, out)
    except (IndexError, FileNotFoundError) as err:
        sys.exit(f"plot_training: error: {err or 'usage: plot_training.py RUN_DIR OUT.png'}")
    print(f"wrote {path} ({len(log_history(run_dir))} steps)")
