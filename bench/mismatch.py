"""Rollout/trainer log-prob mismatch of latent GRPO in bf16 on the CPU, without and with truncated IS.

    .venv/bin/python -m bench.mismatch [--steps 4] [--cap 2.0] [--m 2] [--noise 0.1] [--completion 16]

Two short GRPO runs on the embedded model, same seed, data, LoRA and exploration (grad_mode full, Gaussian
noise on the latent inputs), with `bf16: true, use_cpu: true`: HF autocasts both the rollout (KV cache, one
token at a time) and the loss forward (one pass) to bf16, so their log-probs of the same tokens differ by bf16
rounding. The second run sets `rollout_is_cap`, TRL's truncated importance-sampling correction. Each step logs
the `rollout/*` metrics (|sampling - trainer| over completion tokens; the latent actions' recorded vs recomputed
log-density) and, with the correction, TRL's `sampling/*` ones; the median over steps is printed side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from latentrl.models import load_model  # noqa: E402
from latentrl.rl.config import LatentGRPOConfig  # noqa: E402
from latentrl.rl.rewards import correctness_reward  # noqa: E402
from latentrl.rl.trainer import LatentGRPOTrainer  # noqa: E402
from latentrl.tasks import get_task  # noqa: E402

METRICS = (
    "rollout/token_logp_diff/mean",
    "rollout/token_logp_diff/max",
    "rollout/latent_logp_diff/mean",
    "rollout/latent_logp_diff/max",
    "sampling/importance_sampling_ratio/min",
    "sampling/importance_sampling_ratio/mean",
    "sampling/importance_sampling_ratio/max",
    "loss",
)


class Logged(TrainerCallback):
    """Every step's logged metrics (logging_steps=1)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "rollout/token_logp_diff/mean" in logs:
            self.rows.append(dict(logs))


def run(cap: float | None, args, rows: Dataset, out: str) -> dict[str, float]:
    """One GRPO run; the median over its steps of each metric it logged."""
    lm = load_model(device="cpu", dtype="float32")
    task = get_task("gsm8k")
    cfg = LatentGRPOConfig(
        output_dir=out, task="gsm8k", latent_steps=args.m, topology="sequential", grad_mode="full",
        latent_noise_std=args.noise, rollout_is_cap=cap, per_device_train_batch_size=4, num_generations=2,
        max_completion_length=args.completion, temperature=1.0, learning_rate=1e-4, beta=0.0, use_cpu=True,
        bf16=True, report_to=[], logging_steps=1, save_strategy="no", max_steps=args.steps, seed=0,
        disable_tqdm=True,
    )  # fmt: skip
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=targets, task_type="CAUSAL_LM")
    trainer = LatentGRPOTrainer(
        model=lm.model, reward_funcs=[correctness_reward(task)], args=cfg, processing_class=lm.tokenizer,
        peft_config=lora, train_dataset=rows, answer_format=task.answer_format,
    )  # fmt: skip
    logged = Logged()
    trainer.add_callback(logged)
    trainer.train()
    names = [n for n in METRICS if all(n in r for r in logged.rows)]
    return {n: statistics.median(r[n] for r in logged.rows) for n in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--cap", type=float, default=2.0, help="rollout_is_cap of the corrected run")
    ap.add_argument("--m", type=int, default=2, help="latent steps per worker")
    ap.add_argument("--noise", type=float, default=0.1, help="latent_noise_std (exploration)")
    ap.add_argument("--completion", type=int, default=16, help="max_completion_length")
    args = ap.parse_args()
    task = get_task("gsm8k")
    examples = task.load("offline", None)[: 2 * args.steps]
    rows = Dataset.from_list([{"prompt": e.question, "gold": e.gold} for e in examples])
    out = tempfile.mkdtemp(prefix="bench-mismatch-")
    print(
        f"embedded model, bf16 autocast on the CPU, {torch.get_num_threads()} threads; m={args.m}, noise {args.noise}, "
        f"batch 4 (2 prompts x 2), {args.completion} completion tokens, {args.steps} steps"
    )
    sides = {"off": run(None, args, rows, out), f"cap {args.cap}": run(args.cap, args, rows, out)}
    print(f"{'median over steps':42s}" + "".join(f"{s:>14s}" for s in sides))
    for name in METRICS:
        print(f"{name:42s}" + "".join(f"{v[name]:14.4g}" if name in v else f"{'-':>14s}" for v in sides.values()))


if __name__ == "__main__":
    main()
