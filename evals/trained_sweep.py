"""Trained sweep: GRPO at several latent-step counts, each adapter evaluated at every m (train-m x eval-m).

    .venv/bin/python evals/trained_sweep.py --config evals/configs/trained_small.yaml [--dry-run]

The YAML has `recipe` (a recipes/configs file), `train_latent_steps` (list), `train_overrides` (extra
`--key value` for recipes/grpo.py), `launcher` (default: accelerate launch), and `eval`: options of
`latentrl eval` whose `latent_steps` list is the eval-m axis. Training resumes from the last checkpoint
and finished evaluations are skipped, so a killed sweep reruns cheaply. evals/report.py then draws the
train-m x eval-m heatmap.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from latentrl.eval import EvalConfig, run_eval
from latentrl.eval.grid import AXES, expand

ROOT = Path(__file__).resolve().parents[1]


def train_command(cfg: dict, m: int, out: Path) -> list[str]:
    launcher = shlex.split(cfg.get("launcher", "accelerate launch --num_processes 1"))
    beside = Path(sys.executable).parent / launcher[0]  # the venv's accelerate/torchrun, even off PATH
    launcher[0] = shutil.which(launcher[0]) or (str(beside) if beside.exists() else launcher[0])
    overrides = [str(x) for k, v in (cfg.get("train_overrides") or {}).items() for x in (f"--{k}", v)]
    return [*launcher, str(ROOT / "recipes/grpo.py"), "--config", str(ROOT / cfg["recipe"]), "--latent_steps", str(m),
            "--output_dir", str(out), "--resume_from_checkpoint", "true", *overrides]  # fmt: skip


def eval_points(cfg: dict, adapter: Path, out: Path) -> list[EvalConfig]:
    ev = dict(cfg.get("eval") or {})
    axes = {k: v if isinstance(v, list) else [v] for k, v in ev.items() if k in AXES}
    base = EvalConfig(**{k: v for k, v in ev.items() if k not in AXES}, adapter=str(adapter), output=str(out))
    return expand(base, axes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    cfg = yaml.safe_load(Path(args.config).read_text())
    root = Path(cfg.get("output", "runs/trained-sweep"))
    for m in cfg["train_latent_steps"]:
        adapter = root / f"train-m{m}" / "adapter"
        cmd = train_command(cfg, m, adapter)
        print("$", shlex.join(cmd), file=sys.stderr)
        if args.dry_run:
            continue
        if not (adapter / "latentrl_recipe.json").exists():  # finished trainings are not redone
            subprocess.run(cmd, check=True, cwd=ROOT)
        for point in eval_points(cfg, adapter, root / f"train-m{m}" / "eval"):
            summary = run_eval(point)
            if summary:
                print(json.dumps({"train_m": m, "eval_m": summary["latent_steps"], "accuracy": summary["accuracy"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
