"""GRPO on LatentMAS rollouts.

    accelerate launch recipes/grpo.py --config recipes/configs/arithmetic_cpu.yaml [--key value ...]
    accelerate launch --config_file recipes/accelerate/zero2.yaml recipes/grpo.py --config recipes/configs/gsm8k.yaml

Options come from a YAML recipe and command-line overrides (TRL's parser: unknown keys are errors); every
field of LatentGRPOConfig and TRL's GRPOConfig is accepted. Checkpoints go to output_dir every save_steps;
`--resume_from_checkpoint true` continues from the last one.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL; pinned and tested
# DeepSpeed JIT-compiles an op on its first CPU run (about a minute); keep the build inside the project.
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache", "torch_extensions")
)

from peft import LoraConfig  # noqa: E402
from transformers.trainer_utils import get_last_checkpoint  # noqa: E402
from trl import TrlParser  # noqa: E402

from latentrl.models import load_model  # noqa: E402
from latentrl.rl.config import LatentGRPOConfig  # noqa: E402
from latentrl.rl.data import train_dataset  # noqa: E402
from latentrl.rl.rewards import closeness_reward, correctness_reward, format_reward  # noqa: E402
from latentrl.rl.trainer import LatentGRPOTrainer  # noqa: E402
from latentrl.tasks import get_task  # noqa: E402


def resume_point(value: str | None, output_dir: str) -> str | None:
    """`true`/`last`: the newest checkpoint in output_dir (none yet: start fresh); else a path or None."""
    if value is None or str(value).lower() not in ("true", "last"):
        return value
    last = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    print(f"grpo: resuming from {last}" if last else "grpo: no checkpoint yet, starting fresh", file=sys.stderr)
    return last


def main(argv: list[str] | None = None) -> None:
    (args,) = TrlParser((LatentGRPOConfig,)).parse_args_and_config(argv)
    os.environ.setdefault("WANDB_DIR", args.output_dir)  # offline W&B files beside the run, not in the cwd
    task = get_task(args.task)
    if task.executes_code:  # allowed by the config check; rewards then run code in the sandbox only
        from latentrl.tasks.sandbox import enable_code_execution

        enable_code_execution()
    data = train_dataset(args.train_data, args.data_file, args.train_size, args.seed, args.task)
    device = "cpu" if args.use_cpu else None
    lm = load_model(args.model_name, device=device, dtype="float32" if args.use_cpu else "auto")
    rewards, weights = [correctness_reward(task)], [1.0]
    for weight, make in ((args.format_reward, format_reward), (args.closeness_reward, closeness_reward)):
        if weight:
            rewards.append(make(task))
            weights.append(weight)
    args.reward_weights = weights
    lora = None
    if args.use_lora:
        targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
        lora = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, target_modules=targets, task_type="CAUSAL_LM")
    trainer = LatentGRPOTrainer(
        model=lm.model,
        reward_funcs=rewards,
        args=args,
        train_dataset=data,
        processing_class=lm.tokenizer,
        peft_config=lora,
        answer_format=task.answer_format,
    )
    trainer.train(resume_from_checkpoint=resume_point(args.resume_from_checkpoint, args.output_dir))
    trainer.save_model(args.output_dir)
    # The recipe beside the adapter, so evaluations know how it was trained (e.g. its latent steps).
    with open(os.path.join(args.output_dir, "latentrl_recipe.json"), "w") as fh:
        json.dump(args.to_dict(), fh, indent=2, default=str)
    trainer.save_state()  # trainer_state.json: the log history that recipes/plot_training.py reads


if __name__ == "__main__":
    main()
