"""Trained sweep: GRPO at several latent-step counts, each adapter evaluated at every m (train-m x eval-m).

    .venv/bin/python evals/trained_sweep.py --config evals/configs/trained_small.yaml [--dry-run]

The YAML has `recipe` (a recipes/configs file), `train_latent_steps` (list), `train_overrides` (extra
`--key value` for recipes/grpo.py), `launcher` (default: accelerate launch), and `eval`: options of
`latentrl eval` whose `latent_steps` list is the eval-m axis. Training resumes from the last checkpoint
and finished evaluations are skipped, so a killed sweep reruns cheaply. evals/sweep_report.py then draws the
train-m x eval-m heatmap.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from latentrl.cli import INPUT_ERRORS
from latentrl.evaluation import EvalConfig, run_eval
from latentrl.evaluation.grid import plan

ROOT = Path(__file__).resolve().parents[1]


def train_command(cfg: dict, m: int, out: Path) -> list[str]:
    launcher = shlex.split(cfg.get("launcher", "accelerate launch --num_processes 1"))
    beside = Path(sys.executable).parent / launcher[0]  # the venv's accelerate/torchrun, even off PATH
    launcher[0] = shutil.which(launcher[0]) or (str(beside) if beside.exists() else launcher[0])
    name = f"{cfg.get('wandb_group') or Path(cfg.get('output', 'trained')).name}-train-m{m}"
    overrides = {"run_name": name, **(cfg.get("train_overrides") or {})}
    overrides = [str(x) for k, v in overrides.items() for x in (f"--{k}", v)]
    return [*launcher, str(ROOT / "recipes/grpo.py"), "--config", str(ROOT / cfg["recipe"]), "--latent_steps", str(m),
            "--output_dir", str(out), "--resume_from_checkpoint", "true", *overrides]  # fmt: skip


def eval_points(cfg: dict, adapter: Path, out: Path) -> list[EvalConfig]:
    group = {"wandb_group": cfg["wandb_group"]} if cfg.get("wandb_group") else {}
    return plan({**(cfg.get("eval") or {}), **group, "adapter": str(adapter), "output": str(out)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--train-m", type=int, action="append", help="run only this training m (repeatable)")
    args = ap.parse_args(argv)
    try:
        cfg = yaml.safe_load(Path(args.config).read_text())
        if not isinstance(cfg, dict) or not isinstance(cfg.get("train_latent_steps"), list) or "recipe" not in cfg:
            raise ValueError("needs a mapping with 'recipe' and a 'train_latent_steps' list")
        root = Path(cfg.get("output", "runs/trained-sweep"))
        todo = [m for m in cfg["train_latent_steps"] if not args.train_m or m in args.train_m]
        plans = {m: eval_points(cfg, root / f"train-m{m}" / "adapter", root / f"train-m{m}" / "eval") for m in todo}
    except (*INPUT_ERRORS, TypeError, yaml.YAMLError) as err:
        print(f"trained_sweep: error: {args.config}: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    env = {**os.environ, **({"WANDB_RUN_GROUP": cfg["wandb_group"]} if cfg.get("wandb_group") else {})}
    for m, points in plans.items():
        adapter = root / f"train-m{m}" / "adapter"
        cmd = train_command(cfg, m, adapter)
        print("$", shlex.join(cmd), file=sys.stderr)
        if args.dry_run:
            continue
        if not (adapter / "latentrl_recipe.json").exists():  # finished trainings are not redone
            if subprocess.run(cmd, cwd=ROOT, env=env).returncode:
                print(f"trained_sweep: error: training at m={m} failed (a rerun resumes it)", file=sys.stderr)
                return 1
        for point in points:
            summary = run_eval(point)
            if summary:
                print(json.dumps({"train_m": m, "eval_m": summary["latent_steps"], "accuracy": summary["accuracy"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
