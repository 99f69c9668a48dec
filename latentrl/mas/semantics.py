"""Semantics: which LatentMAS method the engine runs, the toolkit's (`current`) or the reference's.

current: the hierarchical experts run as independent rows whose caches are concatenated for the
summarizer; at m = 0 the final agent still reads the earlier agents' prompts (docs/design.md §3).
reference: what Gen-Verse/LatentMAS computes, for comparisons with its numbers. Both topologies are
one growing cache in agent order (its hierarchical topology is its sequential pipeline with the
hierarchical prompts), and at m = 0 the final agent decodes on its own prompt alone. The engine is the
same; only the layout differs, and batching stays exact (the reference itself is not batch-invariant).
"""

from __future__ import annotations

from dataclasses import dataclass

SEMANTICS = ("current", "reference")
DEFAULT_PROMPTS = {"current": "default", "reference": "reference"}  # the prompt set each semantics uses
EXPERT_POSITIONS = ("shared", "offset")


@dataclass(frozen=True)
class Layout:
    topology: str  # the engine topology: sequential (one growing cache) or hierarchical (parallel experts)
    workers_run: bool  # False: no worker runs; the final agent decodes on its own prompt alone
    final_note: bool = True  # the final prompt's memory note names the workers (False: as if there were none)


def layout(semantics: str, topology: str, latent_steps: int, memory_control: str = "none") -> Layout:
    """How the engine runs `topology` at m = latent_steps under `semantics` and a memory control.

    `no_memory` keeps the final agent's prompt exactly as with memory (its note included), so that the
    memory is the only difference; reference at m = 0 renders the final prompt as if no worker existed."""
    if memory_control == "no_memory":
        return Layout("sequential", False, True)
    if semantics == "reference":
        return Layout("sequential", latent_steps > 0, latent_steps > 0)
    return Layout(topology, True)


def check_semantics(semantics: str, expert_positions: str) -> None:
    if semantics not in SEMANTICS:
        raise ValueError(f"--semantics takes {' | '.join(SEMANTICS)}, got '{semantics}'")
    if expert_positions not in EXPERT_POSITIONS:
        raise ValueError(f"--expert-positions takes {' | '.join(EXPERT_POSITIONS)}, got '{expert_positions}'")
    if semantics == "reference" and expert_positions != "shared":
        raise ValueError("--expert-positions offset applies to --semantics current (the reference's are contiguous)")
