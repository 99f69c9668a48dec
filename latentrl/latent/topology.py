"""Building the latent working memory for the two topologies.

Sequential: agents share one row; each non-final agent's prompt and m latent steps are appended to
the same KV cache, so agent k reads everything agents 1..k-1 left (also at m = 0: their prompts).
Hierarchical: experts run as independent rows of one batch (they cannot see each other), their caches
are then laid side by side into one row per question, which the final agent reads in full. Each expert
starts at position 0, or with `offset_experts` after the earlier ones (`trajectory.expert_starts`).
Both return the memory with the final agent's prompt already prefilled, ready to decode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from latentrl.latent.align import Alignment
from latentrl.latent.controls import Substitute
from latentrl.latent.memory import Memory, concat_rows, latent_steps
from latentrl.latent.trajectory import expert_starts, left_pad, question_major


@dataclass
class LatentMemory:
    memory: Memory  # ready to decode: the final agent's prompt is in it (unless not prefilled)
    h_last: torch.Tensor | None  # (B, d) last-layer state at the final prompt's last column
    latents: list[torch.Tensor]  # per non-final agent, (B, m, d) latent input embeddings
    memory_length: torch.Tensor  # (B,) real KV columns before the final agent's prompt
    logdensity: torch.Tensor  # (B,) fp64 log-density of the exploration noise, up to its constant (0 without)

    def rows(self, index: torch.Tensor, extra: int = 0) -> LatentMemory:
        """Rows `index` (may repeat) with room for `extra` more columns: one run of shared workers, branched."""
        return LatentMemory(
            self.memory.rows(index, extra),
            None if self.h_last is None else self.h_last[index],
            [lat[index] for lat in self.latents],
            self.memory_length[index],
            self.logdensity[index],
        )


def _prefill(memory: Memory, prompts: list[list[int]], pad_id: int) -> torch.Tensor:
    ids, mask = left_pad(prompts, pad_id, memory.mask.device)
    return memory.forward_ids(ids, mask)[:, -1]


def sequential_memory(
    model: PreTrainedModel,
    prompts: list[list[list[int]]],
    m: int,
    align: Alignment,
    pad_id: int,
    noise_std: float = 0.0,
    reserve: int = 0,
    prefill_final: bool = True,
    substitute: Substitute | None = None,
) -> LatentMemory:
    """prompts[agent][question] token ids; the last agent is the final one. `reserve`: columns to keep
    room for after the final prompt (the decode budget), so the KV buffer is sized once. With
    prefill_final=False the final prompt is left out (h_last None): for a decoder that takes the context
    as embeddings (the vLLM backend) and prefills it itself. `substitute`: a memory control's latent inputs."""
    filled = prompts if prefill_final else prompts[:-1]
    width = sum(max(map(len, p)) for p in filled) + m * (len(prompts) - 1)
    memory = Memory.empty(model, len(prompts[0]), width + reserve)
    latents, logdensity = [], 0.0
    for a, agent_prompts in enumerate(prompts[:-1]):
        h = _prefill(memory, agent_prompts, pad_id)
        feed = None if substitute is None else substitute.at(a * m)
        lat, dens = latent_steps(memory, h, m, align, noise_std, feed)
        latents.append(lat)
        logdensity = logdensity + dens
    length = memory.real_length()
    h = _prefill(memory, prompts[-1], pad_id) if prefill_final else None
    zeros = torch.zeros(memory.batch, dtype=torch.float64, device=memory.mask.device)
    return LatentMemory(memory, h, latents, length, logdensity + zeros)


def hierarchical_memory(
    model: PreTrainedModel,
    expert_prompts: list[list[list[int]]],
    final_prompts: list[list[int]],
    m: int,
    align: Alignment,
    pad_id: int,
    noise_std: float = 0.0,
    reserve: int = 0,
    offset_experts: bool = False,
    substitute: Substitute | None = None,
) -> LatentMemory:
    """expert_prompts[expert][question]; experts run as parallel rows, question-major. `reserve` and
    `substitute` as in `sequential_memory`."""
    n_exp, n_q = len(expert_prompts), len(final_prompts)
    flat = question_major(expert_prompts)
    rows = Memory.empty(model, len(flat), max(map(len, flat)) + m)
    rows.next_pos = expert_starts(expert_prompts, m, offset_experts).to(rows.next_pos.device)
    h = _prefill(rows, flat, pad_id)
    feed = None if substitute is None else substitute.flat(n_exp, m)
    lat, dens = latent_steps(rows, h, m, align, noise_std, feed)
    lat = lat.view(n_q, n_exp, m, lat.shape[-1])
    memory = concat_rows(rows, n_exp, max(map(len, final_prompts)) + reserve)
    del rows  # the experts' own cache: its KV now lives in `memory`
    length = memory.real_length()
    h = _prefill(memory, final_prompts, pad_id)
    return LatentMemory(memory, h, list(lat.unbind(1)), length, dens.view(n_q, n_exp).sum(1))


def build_memory(
    model: PreTrainedModel,
    topology: str,
    worker_prompts: list[list[list[int]]],
    final_prompts: list[list[int]],
    m: int,
    align: Alignment,
    pad_id: int,
    noise_std: float = 0.0,
    reserve: int = 0,
    offset_experts: bool = False,
    substitute: Substitute | None = None,
    prefill_final: bool = True,
) -> LatentMemory:
    """The memory of either topology; worker_prompts[agent][question]; `reserve`: the decode budget.
    With no worker prompts the memory holds the final prompt alone (the `no_memory` control)."""
    if topology == "hierarchical" and worker_prompts:
        if not prefill_final:
            raise ValueError("the hierarchical memory is always built with the final prompt prefilled")
        return hierarchical_memory(
            model, worker_prompts, final_prompts, m, align, pad_id, noise_std, reserve, offset_experts, substitute
        )
    return sequential_memory(
        model, [*worker_prompts, final_prompts], m, align, pad_id, noise_std, reserve, prefill_final, substitute
    )
