"""The latent settings: one dataclass, one set of checks, read by evaluation, GRPO and vLLM alike.

`LatentSpec` holds what decides the LatentMAS pipeline of a batch: the topology, m, the alignment map,
the thinking switch, the semantics, the prompt set, the experts' positions and the memory control.
`MethodConfig` (methods.py), `EvalConfig` (evaluation/config.py) and `LatentGRPOConfig` (rl/config.py)
inherit it, so a flag of `latentrl eval` and a key of a GRPO recipe are the same field with the same
default and the same check, and nothing is handed over by position.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields

from latentrl.latent.align import MODES
from latentrl.latent.controls import CONTROLS, control_problems
from latentrl.mas.promptset import PromptSet, load_prompt_set
from latentrl.mas.roles import TOPOLOGIES
from latentrl.mas.semantics import DEFAULT_PROMPTS, Layout, check_semantics, layout

THINK = {None: None, "on": True, "off": False}  # --think -> the chat template's enable_thinking


@dataclass
class LatentSpec:
    topology: str = field(default="sequential", metadata={"help": "sequential | hierarchical (multi-agent methods)"})
    latent_steps: int = field(default=8, metadata={"help": "m, latent steps per non-final agent (latent_mas)"})
    align: str = field(default="ridge", metadata={"help": "alignment map: raw | norm | ridge"})
    align_lambda: float = field(default=1e-5, metadata={"help": "ridge regularizer lambda"})
    think: str | None = field(
        default=None,
        metadata={
            "help": "on | off: enable_thinking for chat templates that take it (Qwen3); thinking wants thousands "
            "of new tokens, and an answer cut inside <think> is recorded as think_truncated"
        },
    )
    semantics: str = field(
        default="current",
        metadata={"help": "latent_mas: current | reference (the toolkit's LatentMAS or Gen-Verse/LatentMAS's)"},
    )
    prompts: str | None = field(
        default=None,
        metadata={"help": "prompt set: shipped name (default, reference) or YAML/JSON file; unset: the semantics' own"},
    )
    expert_positions: str = field(
        default="shared",
        metadata={"help": "current hierarchical: shared (every expert from position 0) | offset (one after another)"},
    )
    memory_control: str = field(
        default="none",
        metadata={
            "help": "latent_mas memory content control: none | shuffled (another question's memory) | no_memory "
            "(the final agent alone) | noise (random latents, real norm) | pause (a filler embedding)"
        },
    )

    def __post_init__(self) -> None:
        if problems := self.latent_problems():
            raise ValueError("; ".join(problems))

    def latent_problems(self) -> list[str]:
        """Every problem of these settings, one line each; nothing is loaded but the prompt set."""
        problems = []
        if self.topology not in TOPOLOGIES:
            problems.append(f"unknown topology '{self.topology}'; choose one of {sorted(TOPOLOGIES)}")
        if not isinstance(self.latent_steps, int) or self.latent_steps < 0:
            problems.append(f"latent_steps must be >= 0, got {self.latent_steps}")
        if self.align not in MODES:
            problems.append(f"unknown alignment '{self.align}'; choose one of {MODES}")
        if self.think not in THINK:
            problems.append(f"think takes on | off, got '{self.think}' (leave it out for the template's default)")
        try:
            check_semantics(self.semantics, self.expert_positions)
            self.prompt_set  # noqa: B018  (loads and checks the prompt set now, before any model)
        except (ValueError, FileNotFoundError) as err:
            problems.append(str(err))
        if self.memory_control not in CONTROLS:
            problems.append(f"memory control must be one of {CONTROLS}, got '{self.memory_control}'")
        elif not problems:
            problems += control_problems(self.memory_control, self.semantics, self.latent_steps)
        return problems

    @functools.cached_property
    def prompt_set(self) -> PromptSet:
        return load_prompt_set(self.prompts or DEFAULT_PROMPTS[self.semantics])

    @property
    def enable_thinking(self) -> bool | None:
        return THINK[self.think]

    @property
    def layout(self) -> Layout:
        return layout(self.semantics, self.topology, self.latent_steps, self.memory_control)

    def latent_spec(self) -> LatentSpec:
        """These settings alone (for a config that inherits them)."""
        return LatentSpec(**spec_fields(self))


def spec_fields(obj: LatentSpec) -> dict:
    """The latent settings of `obj` by name, to build another config of the same settings."""
    return {f.name: getattr(obj, f.name) for f in fields(LatentSpec)}
