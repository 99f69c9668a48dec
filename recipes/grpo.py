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
import warnings

import yaml

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL; pinned and tested
# DeepSpeed JIT-compiles an op on its first CPU run (about a minute); keep the build inside the project.
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache", "torch_extensions")
)

from transformers.trainer_utils import get_last_checkpoint  # noqa: E402
from trl import TrlParser  # noqa: E402

from latentrl.models import GC_RENAMED, ModelLoadError, load_model  # noqa: E402
from latentrl.rl.config import LatentGRPOConfig  # noqa: E402
from latentrl.rl.data import train_dataset  # noqa: E402
from latentrl.rl.lora import lora_config  # noqa: E402
from latentrl.rl.rewards import closeness_reward, correctness_reward, format_reward  # noqa: E402
from latentrl.rl.trainer import LatentGRPOTrainer  # noqa: E402
from latentrl.tasks import get_task  # noqa: E402
from latentrl.tracking import wandb_mode  # noqa: E402

warnings.filterwarnings("ignore", GC_RENAMED, FutureWarning)  # TRL calls the old names at every step


def resume_point(value: str | None, output_dir: str) -> str | None:
    """`true`/`last`: the newest checkpoint in output_dir (none yet: start fresh); else a path or None."""
    if value is None or str(value).lower() not in ("true", "last"):
        return value
    last = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    print(f"grpo: resuming from {last}" if last else "grpo: no checkpoint yet, starting fresh", file=sys.stderr)
    return last


def setup(argv: list[str] | None) -> tuple[LatentGRPOTrainer, LatentGRPOConfig]:
    """Everything that can fail on bad input, before any training: recipe, data, model, adapters, W&B."""
    (args,) = TrlParser((LatentGRPOConfig,)).parse_args_and_config(argv)
    os.environ.setdefault("WANDB_DIR", args.output_dir)  # offline W&B files beside the run, not in the cwd
    if "wandb" in args.report_to:
        os.environ["WANDB_MODE"] = os.environ.get("WANDB_MODE") or wandb_mode()  # never blocks on a login
        if os.environ["WANDB_MODE"] == "offline":
            print(f"grpo: W&B offline: files under {args.output_dir}/wandb (upload with `wandb sync`)", file=sys.stderr)
    task = get_task(args.task)
    if task.executes_code:  # allowed by the config check; rewards then run code in the sandbox only
        from latentrl.sandbox import enable_code_execution

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
    trainer = LatentGRPOTrainer(
        model=lm.model,
        reward_funcs=rewards,
        args=args,
        train_dataset=data,
        processing_class=lm.tokenizer,
        peft_config=lora_config(lm.model, args.lora_targets, args.lora_r, args.lora_alpha),
        answer_format=task.answer_format,
    )
    return trainer, args


def main(argv: list[str] | None = None) -> None:
    try:
        trainer, args = setup(argv)
    except (ValueError, RuntimeError, OSError, ModelLoadError, yaml.YAMLError) as err:  # bad input: one line, exit 2
        print("grpo: error: " + " ".join(str(err).split()), file=sys.stderr)
        raise SystemExit(2) from None
    trainer.train(resume_from_checkpoint=resume_point(args.resume_from_checkpoint, args.output_dir))
    trainer.save_model(args.output_dir)
    # The recipe beside the adapter, so evaluations know how it was trained (e.g. its latent steps).
    with open(os.path.join(args.output_dir, "latentrl_recipe.json"), "w") as fh:
        json.dump(args.to_dict(), fh, indent=2, default=str)
    trainer.save_state()  # trainer_state.json: the log history that recipes/plot_training.py reads


if __name__ == "__main__":
    main()
