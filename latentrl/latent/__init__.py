"""The latent core: alignment map, KV working memory and latent steps, topologies, trajectory layout."""

from latentrl.latent.align import MODES, Alignment, get_alignment
from latentrl.latent.memory import Memory, concat_rows, latent_steps
from latentrl.latent.topology import LatentMemory, build_memory, hierarchical_memory, sequential_memory
from latentrl.latent.trajectory import (
    Trajectory,
    build_trajectory,
    fill_latents,
    hierarchical_trajectory,
    left_pad,
    recompute,
    sequential_trajectory,
)

__all__ = [
    "MODES",
    "Alignment",
    "LatentMemory",
    "Memory",
    "Trajectory",
    "build_memory",
    "build_trajectory",
    "concat_rows",
    "fill_latents",
    "get_alignment",
    "hierarchical_memory",
    "hierarchical_trajectory",
    "latent_steps",
    "left_pad",
    "recompute",
    "sequential_memory",
    "sequential_trajectory",
]
