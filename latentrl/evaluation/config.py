"""An evaluation point's configuration and the checks made before anything loads.

`EvalConfig` inherits the latent settings (`mas.spec.LatentSpec`: the same fields, defaults and checks as
methods and GRPO recipes) and adds the model, data, decoding and output. `latentrl eval` makes one flag
per field; sweep files use the same names.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from latentrl.mas import MethodConfig, Sampling, get_method
from latentrl.mas.spec import LatentSpec, spec_fields
from latentrl.mas.vllm_decode import VLLMUnavailable
from latentrl.models import DEFAULT_MODEL
from latentrl.tasks import Task, get_task
from latentrl.tasks.sources import SOURCES


class ConfigError(ValueError):
    """Invalid or conflicting run configuration."""


@dataclass
class EvalConfig(LatentSpec):
    """One evaluation point: the latent settings (`LatentSpec`) plus the model, data, decoding and output."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "hub id, local path or embedded:<name>"})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter dir (from recipes/grpo.py) to merge"})
    task: str = field(default="gsm8k", metadata={"help": "benchmark name"})
    method: str = field(default="latent_mas", metadata={"help": "single | text_mas | latent_mas"})
    limit: int | None = field(default=None, metadata={"help": "first N questions only"})
    batch_size: int = field(default=8, metadata={"help": "questions per batch"})
    max_new_tokens: int = field(default=256, metadata={"help": "per agent that writes text"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    seed: int = field(default=0, metadata={"help": "sampling seed (and the shuffled control's donors)"})
    data_source: str = field(default="auto", metadata={"help": "auto | hub | offline | file"})
    data_file: str | None = field(default=None, metadata={"help": "local data file, overrides the source"})
    device: str | None = field(default=None, metadata={"help": "cuda / cpu (default: cuda if available)"})
    dtype: str = field(default="auto", metadata={"help": "auto | float32 | bfloat16 | float16"})
    backend: str = field(
        default="hf", metadata={"help": "final agent's decode: hf | vllm (latent_mas, sequential; GPU profile)"}
    )
    output: str = field(default="runs/eval", metadata={"help": "output directory"})
    allow_code_execution: bool = field(
        default=False, metadata={"help": "run generated code (sandboxed) to score code tasks"}
    )
    wandb: bool = field(default=False, metadata={"help": "log to W&B (offline unless logged in)"})
    wandb_project: str = field(default="latentrl", metadata={"help": "W&B project"})
    wandb_group: str | None = field(default=None, metadata={"help": "W&B group (a sweep)"})

    # Fields that do not change any prediction: a rerun may change them freely.
    FREE = ("limit", "output", "device", "allow_code_execution", "wandb", "wandb_project", "wandb_group")

    def __post_init__(self) -> None:
        if problems := self.latent_problems():
            raise ConfigError("; ".join(problems))

    def validate(self) -> Task:
        """Everything checkable before a model or a dataset is loaded; returns the task."""
        task = get_task(self.task)
        get_method(self.method)
        if self.memory_control != "none" and self.method != "latent_mas":
            raise ConfigError(f"--memory-control {self.memory_control} applies to latent_mas only, not '{self.method}'")
        if self.data_source not in SOURCES:
            raise ConfigError(f"unknown data source '{self.data_source}'; choose one of {SOURCES}")
        for name, low in (("batch_size", 1), ("max_new_tokens", 1), ("limit", 1)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
        if task.executes_code and not self.allow_code_execution:
            raise ConfigError(
                f"task '{self.task}' scores answers by running generated code; pass --allow-code-execution "
                "to run it in the sandbox (separate process, resource limits, no network)"
            )
        if self.backend != "hf" and self.method != "latent_mas":
            raise ConfigError(f"--backend {self.backend} applies to latent_mas only, not '{self.method}'")
        if self.backend == "vllm" and self.adapter:
            raise ConfigError("--backend vllm loads weights from the model path: merge the adapter and pass its dir")
        check_device(self.device)
        check_output(Path(self.output))
        self.method_config()
        return task

    def method_config(self) -> MethodConfig:
        """The method's config of this point, built once (by keyword: the latent fields are shared)."""
        if "_method_config" not in self.__dict__:
            try:
                sampling = Sampling(self.max_new_tokens, self.temperature, self.top_p, self.seed)
                self.__dict__["_method_config"] = MethodConfig(
                    **spec_fields(self), sampling=sampling, backend=self.backend
                )
            except (ValueError, VLLMUnavailable) as err:
                raise ConfigError(str(err)) from err
        return self.__dict__["_method_config"]

    def fingerprint(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.FREE}


def check_device(device: str | None) -> None:
    """Refuse a device this machine does not have, before anything loads."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"--device {device!r} is not a device (use cpu, cuda or cuda:N)") from err
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {device}: no CUDA GPU is visible here; use --device cpu or omit --device")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"--device {device}: only {count} CUDA device(s) here (cuda:0..cuda:{count - 1})")


def check_output(out: Path) -> None:
    """Refuse an --output that is a file, or under a file, or in a directory this process cannot write."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out} is a file, not a directory")
    parent = next(p for p in (out, *out.parents) if p.exists())  # the nearest part that exists
    if not parent.is_dir():
        raise ConfigError(f"--output {out}: {parent} is a file, so the directory cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--output {out}: {parent} is not writable")
