"""GRPO on latent rollouts: the recipe's configuration (TRL's GRPOConfig plus the latent and data fields).

Everything here is checked in `__post_init__`, so a bad recipe fails before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from latentrl.latent.controls import REPLACES_LATENTS
from latentrl.mas.spec import LatentSpec
from latentrl.models import DEFAULT_MODEL
from latentrl.rl.loss_options import loss_option_problems
from latentrl.tasks import get_task

GRAD_MODES = ("none", "full")
# GRPOConfig generation options the latent rollout does not implement, with the values that mean "off".
UNSUPPORTED = {
    "use_vllm": (False,),
    "use_transformers_paged": (False,),
    "use_transformers_continuous_batching": (False,),
    "top_k": (0, -1, None),
    "min_p": (None,),
    "repetition_penalty": (1.0,),
    "generation_kwargs": (None, {}),
    "cache_implementation": (None,),
    "chat_template_kwargs": (None, {}),
}
TRAIN_DATA = ("auto", "hub", "arithmetic", "chains", "file", "task")


@dataclass
class LatentGRPOConfig(GRPOConfig, LatentSpec):
    """TRL's GRPOConfig plus the latent settings (`LatentSpec`: the same keys, defaults and checks as
    `latentrl eval`) and what only training needs: data, exploration, gradient mode, rewards, LoRA."""

    model_name: str = field(default=DEFAULT_MODEL, metadata={"help": "hub id, local path or embedded:<name>"})
    task: str = field(default="gsm8k", metadata={"help": "task whose answer format and scorer define the reward"})
    train_data: str = field(
        default="auto",
        metadata={"help": "auto | hub | arithmetic | chains (train split) | file | task (the task's own loader)"},
    )
    allow_code_execution: bool = field(
        default=False, metadata={"help": "code tasks: score rollouts by running them in the sandbox"}
    )
    data_file: str | None = field(default=None, metadata={"help": "JSON/JSONL rows with question and answer"})
    train_size: int = field(default=256, metadata={"help": "generated problems (train_data=arithmetic, chains)"})
    grad_mode: str = field(
        default="none", metadata={"help": "none: latents recomputed without grad; full: backprop through them"}
    )
    latent_noise_std: float = field(
        default=0.0,
        metadata={"help": "exploration: N(0, std^2) noise on latent inputs, its log-density in the ratio (needs full)"},
    )
    reuse_rollout_latents: bool = field(
        default=True,
        metadata={
            "help": "grad_mode none: the loss forward feeds the rollout's latents when the policy is unchanged "
            "since (exact; skips the recurrence). false: always recompute"
        },
    )
    share_worker_rollouts: bool = field(
        default=True,
        metadata={
            "help": "without exploration noise, a prompt's generations share one run of its workers (prefills "
            "and latent steps are identical) in the rollout and the recompute. false: run each (benchmarks)"
        },
    )
    rollout_is_cap: float | None = field(
        default=None,
        metadata={
            "help": "truncated importance sampling for the rollout/trainer mismatch: the per-token loss is weighted "
            "by min(exp(old_logp - sampling_logp), cap), TRL's vLLM correction applied to the latent rollout "
            "(costs one old-policy forward per batch). unset: off"
        },
    )
    format_reward: float = field(default=0.0, metadata={"help": "weight of the answer-format reward (0 = off)"})
    closeness_reward: float = field(
        default=0.0, metadata={"help": "weight of the numeric-closeness reward (0 = off; numeric tasks)"}
    )
    use_lora: bool = field(default=True, metadata={"help": "train LoRA adapters (the KL reference = adapters off)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_targets: str = field(
        default="all-linear",
        metadata={"help": "all-linear (every linear layer but the LM head: fits any architecture) or module names"},
    )

    def __post_init__(self) -> None:
        problems = self.latent_problems()  # the latent settings' own checks, shared with `latentrl eval`
        if self.grad_mode not in GRAD_MODES:
            problems.append(f"grad_mode must be one of {GRAD_MODES}, got '{self.grad_mode}'")
        if self.latent_noise_std < 0:
            problems.append(f"latent_noise_std must be >= 0, got {self.latent_noise_std}")
        if self.latent_noise_std > 0 and self.grad_mode != "full":
            problems.append("latent_noise_std > 0 needs grad_mode=full (the noise density's gradient runs through h)")
        if self.latent_noise_std > 0 and self.memory_control in REPLACES_LATENTS:
            problems.append(
                f"latent_noise_std > 0 explores the latent inputs, which memory_control {self.memory_control} "
                "replaces: set latent_noise_std 0"
            )
        if self.train_data not in TRAIN_DATA:
            problems.append(f"train_data must be one of {TRAIN_DATA}, got '{self.train_data}'")
        if self.train_data == "file" and not self.data_file:
            problems.append("train_data=file needs data_file")
        try:
            task = get_task(self.task)
            if task.executes_code and not self.allow_code_execution:
                problems.append(f"task '{self.task}' runs generated code to score it: set allow_code_execution")
        except ValueError as err:
            problems.append(str(err))
        problems += self.unsupported_generation_options()
        problems += loss_option_problems(self)
        if problems:
            raise ValueError("bad GRPO recipe: " + "; ".join(problems))
        super().__post_init__()  # TRL's own checks: batch / num_generations compatibility, ...

    @property
    def exploring(self) -> bool:
        """Whether latent actions are sampled (exploration noise on latent inputs that exist)."""
        return bool(self.latent_noise_std and self.latent_steps and self.layout.workers_run)

    def unsupported_generation_options(self) -> list[str]:
        """Options TRL would honour in its own generate but the latent rollout would silently ignore."""
        problems = [
            f"{name}={getattr(self, name)!r} is not supported by the latent rollout (leave it at {offs[0]!r})"
            for name, offs in UNSUPPORTED.items()
            if getattr(self, name) not in offs
        ]
        if not self.use_lora:
            problems.append(
                "use_lora=false is not supported: full fine-tuning changes the embeddings the alignment map is "
                "computed from (once per model); train LoRA adapters"
            )
        return problems
