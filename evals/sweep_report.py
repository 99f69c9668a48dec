"""Report of a sweep directory: a markdown table (seeds aggregated) and PNG figures, no W&B needed.

.venv/bin/python evals/sweep_report.py runs/sweep-gsm8k --out docs/sweep_example
"""

from __future__ import annotations

import argparse
from pathlib import Path

from latentrl.evaluation.plots import draw_all, train_eval_heatmap
from latentrl.evaluation.report import find_summaries, group_seeds, markdown_table


def write_report(sweep_dir: str, out: Path) -> Path:
    points = group_seeds(find_summaries([sweep_dir]))
    points.sort(
        key=lambda p: (p["task"], p["method"], p["topology"], p.get("train_latent_steps") or -1, p["latent_steps"])
    )
    out.mkdir(parents=True, exist_ok=True)
    untrained = [p for p in points if p.get("train_latent_steps") is None]
    figures = draw_all(untrained, out) if untrained else []
    heatmap = train_eval_heatmap(points, out)
    figures += [heatmap] if heatmap else []
    lines = [f"# Sweep report: {sweep_dir}", "", markdown_table(points), ""]
    lines += [f"![{f.stem}]({f.name})" for f in figures]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir")
    ap.add_argument("--out", default=None, help="output folder (default: SWEEP_DIR/report)")
    args = ap.parse_args()
    path = write_report(args.sweep_dir, Path(args.out or Path(args.sweep_dir) / "report"))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
