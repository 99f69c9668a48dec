"""Roles and topologies: which agents run, in which order. What each is told lives in prompt sets
(`latentrl.mas.promptset`), so every method (single, text_mas, latent_mas) renders the same texts.
"""

from __future__ import annotations

SOLVER = "solver"  # the single agent of the `single` method

TOPOLOGIES: dict[str, tuple[str, ...]] = {
    # planner -> critic -> refiner -> judger; each agent reads all earlier ones.
    "sequential": ("planner", "critic", "refiner", "judger"),
    # independent experts -> summarizer; experts never see each other, the summarizer sees all.
    "hierarchical": ("math", "science", "code", "summarizer"),
}


def topology(name: str) -> tuple[str, ...]:
    """The role names of a topology, the final agent last."""
    if name not in TOPOLOGIES:
        raise ValueError(f"unknown topology '{name}'; choose one of {sorted(TOPOLOGIES)}")
    return TOPOLOGIES[name]
