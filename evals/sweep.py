"""Zero-training sweep: tasks x methods x topologies x latent steps x seeds, from a YAML config.

    .venv/bin/python evals/sweep.py --config evals/configs/gsm8k_small.yaml [--dry-run]
    torchrun --nproc_per_node 4 evals/sweep.py --config ...        # questions of each point sharded

Each key of the YAML is an option of `latentrl eval` (underscores); the grid axes (task, method,
topology, latent_steps, memory_control, max_new_tokens, seed) may be lists, and `grids` (a list of
mappings, each expanded on its own over the rest) makes designs that are not one full product. Every
point runs in its own directory and resumes: a killed sweep rerun skips finished points and finished
questions. With `wandb: true` each point is a W&B run in
the group `wandb_group` (default: the output directory's name). Then: evals/sweep_report.py OUTPUT.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from latentrl.cli import INPUT_ERRORS
from latentrl.evaluation import EvalConfig, run_eval
from latentrl.evaluation.grid import plan
from latentrl.evaluation.report import group_seeds
from latentrl.tracking import log_sweep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--dry-run", action="store_true", help="print the points and exit")
    args = ap.parse_args(argv)
    try:
        config = yaml.safe_load(Path(args.config).read_text()) or {}
        points = plan(config)
    except (*INPUT_ERRORS, TypeError, yaml.YAMLError) as err:
        print(f"sweep: error: {args.config}: {' '.join(str(err).split())}", file=sys.stderr)  # YAML's are multi-line
        return 2
    summaries = []
    for i, p in enumerate(points, 1):
        done = (Path(p.output) / "summary.json").exists()
        print(f"[{i}/{len(points)}] {p.output}{'  (summary exists: resumes/skips)' if done else ''}", file=sys.stderr)
        try:
            summary = None if args.dry_run else run_eval(p)
        except INPUT_ERRORS as err:
            print(f"sweep: error: {err}", file=sys.stderr)
            return 2
        if summary:
            summaries.append(summary)
            print(json.dumps({k: summary[k] for k in ("task", "method", "latent_steps", "seed", "accuracy")}))
    first = points[0]
    if summaries and first.wandb:  # rank 0 only: other ranks return empty summaries
        root = Path(config.get("output", EvalConfig.output))
        log_sweep(root, first.wandb_project, first.wandb_group, group_seeds(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
