"""Roles and topologies, as data. Every method (single, text_mas, latent_mas) renders these same texts.

A role's instruction says what the agent is for; the method adds what the agent receives from the
others (text messages for TextMAS, a note about latent memory for LatentMAS) and the task adds the
question and, for the final agent, the answer format.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    name: str
    instruction: str


SOLVER = Role("solver", "Solve the question step by step.")

TOPOLOGIES: dict[str, tuple[Role, ...]] = {
    # planner -> critic -> refiner -> judger; each agent reads all earlier ones.
    "sequential": (
        Role(
            "planner",
            "You are the Planner in a team of agents. Think about how to solve the question and write a "
            "concise step-by-step plan. Do not give the final answer.",
        ),
        Role(
            "critic",
            "You are the Critic in a team of agents. Check the team's plan for wrong or missing steps and "
            "say how to fix them.",
        ),
        Role(
            "refiner",
            "You are the Refiner in a team of agents. Combine the plan and the critique into a corrected "
            "step-by-step solution.",
        ),
        Role(
            "judger",
            "You are the Judger in a team of agents. Using the team's reasoning, solve the question "
            "carefully and give the final answer.",
        ),
    ),
    # independent experts -> summarizer; experts never see each other, the summarizer sees all.
    "hierarchical": (
        Role(
            "math",
            "You are the Math Expert in a team of independent experts. Solve the question with careful "
            "mathematical reasoning.",
        ),
        Role(
            "science",
            "You are the Science Expert in a team of independent experts. Solve the question from scientific "
            "knowledge and first principles.",
        ),
        Role(
            "code",
            "You are the Code Expert in a team of independent experts. Solve the question as a programmer would: "
            "precisely, step by step, checking each calculation.",
        ),
        Role(
            "summarizer",
            "You are the Summarizer. Compare the experts' solutions, resolve any disagreement and give the "
            "final answer.",
        ),
    ),
}


def topology(name: str) -> tuple[Role, ...]:
    if name not in TOPOLOGIES:
        raise ValueError(f"unknown topology '{name}'; choose one of {sorted(TOPOLOGIES)}")
    return TOPOLOGIES[name]
