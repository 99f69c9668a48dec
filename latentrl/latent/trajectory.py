"""The trajectory layout shared by inference and training.

One token row per question:

    [agent_1 prompt][<latent> x m][agent_2 prompt][<latent> x m] ... [final prompt]

Each segment is left-padded to the batch maximum so latent columns line up across the batch; the
mask marks real columns. Hierarchical rows lay the experts' segments side by side as *branches*: a
branch column sees only its own branch, the final agent's columns see everything. The recurrence is
deterministic, so the whole prefix is recomputable from this row; `recompute` does it and returns the
input embeddings the engine fed step by step (the property training relies on).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
from transformers import PreTrainedModel

from latentrl.latent.align import Alignment
from latentrl.latent.controls import Substitute
from latentrl.latent.hooks import check_model, decoder_states, embed
from latentrl.latent.masks import Masks, attention_masks, own_masks, slice_masks, visible
from latentrl.latent.memory import new_cache


def left_pad(
    seqs: list[list[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, W) ids and mask, each row right-aligned, so its last column is always real."""
    if any(len(s) == 0 for s in seqs):
        raise ValueError("empty prompt segment: every agent prompt needs at least one token")
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


@dataclass
class Trajectory:
    """A batch of trajectory prefixes (everything before the final agent's completion)."""

    input_ids: torch.Tensor  # (B, P); latent columns hold `latent_id`
    attention_mask: torch.Tensor  # (B, P) 1 = real
    position_ids: torch.Tensor  # (B, P)
    latent_mask: torch.Tensor  # (B, P) bool
    branch: torch.Tensor  # (B, P) 0 = shared, k > 0 = hierarchical branch k

    def attention(self, model: PreTrainedModel) -> Masks:
        """The decoder's `attention_mask` for this row, completion columns included if appended.

        The 2-D padding mask where transformers builds exact masks from it (no branches, `own_masks`),
        else the masks of `latent.masks` (per layer type, in the format `model`'s attention honours),
        built from the row's positions on the row's device."""
        if not (bool(self.branch.any()) or own_masks(model)):
            return self.attention_mask
        cols = torch.arange(self.input_ids.shape[1], device=self.branch.device)
        vis = visible(self.attention_mask, cols, self.branch, self.branch)
        return attention_masks(model, vis, self.position_ids, self.position_ids)

    def to(self, device: torch.device | str) -> Trajectory:
        return Trajectory(*(getattr(self, f.name).to(device) for f in fields(self)))

    def rows(self, index: torch.Tensor | slice) -> Trajectory:
        """Rows `index` of the batch (a slice, or 1-D indices that may repeat)."""
        if isinstance(index, torch.Tensor):
            index = index.to(self.input_ids.device)
        return Trajectory(*(getattr(self, f.name)[index] for f in fields(self)))

    def extend(self, ids: torch.Tensor, mask: torch.Tensor) -> Trajectory:
        """The trajectory with completion columns appended (shared: they see everything before them)."""
        dev = ids.device
        pos = self.position_ids[:, -1:].to(dev) + mask.cumsum(1)
        return Trajectory(
            torch.cat([self.input_ids.to(dev), ids], 1),
            torch.cat([self.attention_mask.to(dev), mask], 1),
            torch.cat([self.position_ids.to(dev), pos], 1),
            torch.cat([self.latent_mask.to(dev), torch.zeros_like(mask, dtype=torch.bool)], 1),
            torch.cat([self.branch.to(dev), torch.zeros_like(ids)], 1),
        )


def pack_row(workers: list[list[int]], final: list[int], m: int, latent_id: int) -> list[int]:
    """One question's unpadded prompt row, [w_1][<latent> x m]...[w_k][<latent> x m][final]: what TRL sees
    as the prompt. `split_row` is its inverse, given the segment lengths."""
    return [t for w in workers for t in w + [latent_id] * m] + final


def split_row(row: list[int], lengths: list[int], m: int) -> tuple[list[list[int]], list[int]]:
    """A prompt row of `pack_row` back into its workers' prompts and the final prompt; `lengths` are the
    token counts of each worker's prompt, then the final agent's."""
    workers, i = [], 0
    for n in lengths[:-1]:
        workers.append(row[i : i + n])
        i += n + m
    if i + lengths[-1] != len(row):
        raise ValueError(f"a prompt row of {len(row)} tokens does not match its segments {lengths} with m={m}")
    return workers, row[i:]


def question_major(per_agent: list[list]) -> list:
    """per_agent[agent][question] -> [q0a0, q0a1, ..., q1a0, ...]: parallel expert rows, as the engine runs them."""
    return [per_agent[a][q] for q in range(len(per_agent[0])) for a in range(len(per_agent))]


def _segment_row(
    segments: list[tuple[torch.Tensor, torch.Tensor]], m: int, latent_id: int, final: bool = True
) -> tuple[torch.Tensor, ...]:
    """Concatenate (ids, mask) segments with m latent columns after each (but the last if it is `final`)."""
    ids, mask, lat = [], [], []
    for j, (s_ids, s_mask) in enumerate(segments):
        ids.append(s_ids)
        mask.append(s_mask)
        lat.append(torch.zeros_like(s_mask, dtype=torch.bool))
        if m > 0 and (j < len(segments) - 1 or not final):
            ids.append(torch.full((s_ids.shape[0], m), latent_id, dtype=torch.long, device=s_ids.device))
            mask.append(torch.ones_like(ids[-1]))
            lat.append(torch.ones_like(ids[-1], dtype=torch.bool))
    return torch.cat(ids, 1), torch.cat(mask, 1), torch.cat(lat, 1)


def positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(1) - 1).clamp_min(0)


def sequential_trajectory(prompts: list[list[list[int]]], m: int, pad_id: int, latent_id: int) -> Trajectory:
    """prompts[agent][question] -> one row per question, agents in order, the last one final."""
    ids, mask, lat = _segment_row([left_pad(p, pad_id) for p in prompts], m, latent_id)
    return Trajectory(ids, mask, positions(mask), lat, torch.zeros_like(ids))


def expert_starts(expert_prompts: list[list[list[int]]], m: int, offset: bool) -> torch.Tensor:
    """(n_q * n_exp,) first position of each expert row, question-major: 0 for all, or with `offset` each
    expert after the earlier experts' prompts and latent steps, as if they were concatenated. RoPE is
    relative, so an offset expert computes what it does at 0; only how the summarizer sees it changes."""
    lengths = torch.tensor([[len(p[q]) + m for p in expert_prompts] for q in range(len(expert_prompts[0]))])
    return (lengths.cumsum(1) - lengths).flatten() if offset else torch.zeros(lengths.numel(), dtype=torch.long)


def hierarchical_trajectory(
    expert_prompts: list[list[list[int]]],
    final_prompts: list[list[int]],
    m: int,
    pad_id: int,
    latent_id: int,
    offset_experts: bool = False,
) -> Trajectory:
    """Experts as branches (all padded to one common width, as the engine runs them), then the final agent.

    Each branch starts at position 0 (or see `expert_starts`); the final agent starts after the furthest.
    """
    n_exp, n_q = len(expert_prompts), len(final_prompts)
    ids, mask, lat = _segment_row([left_pad(question_major(expert_prompts), pad_id)], m, latent_id, final=False)
    width = ids.shape[1]
    e_pos = (expert_starts(expert_prompts, m, offset_experts)[:, None] + mask.cumsum(1) - 1).clamp_min(0)
    start = e_pos[:, -1].view(n_q, n_exp).max(1).values + 1
    f_ids, f_mask = left_pad(final_prompts, pad_id)
    branch = torch.arange(1, n_exp + 1).repeat_interleave(width).expand(n_q, -1)
    return Trajectory(
        torch.cat([ids.reshape(n_q, -1), f_ids], 1),
        torch.cat([mask.reshape(n_q, -1), f_mask], 1),
        torch.cat([e_pos.reshape(n_q, -1), start[:, None] + positions(f_mask)], 1),
        torch.cat([lat.reshape(n_q, -1), torch.zeros_like(f_mask, dtype=torch.bool)], 1),
        torch.cat([branch, torch.zeros_like(f_ids)], 1),
    )


def build_trajectory(
    topology: str,
    worker_prompts: list[list[list[int]]],
    final_prompts: list[list[int]],
    m: int,
    pad_id: int,
    latent_id: int,
    offset_experts: bool = False,
) -> Trajectory:
    """The row layout of either topology, matching `build_memory` column for column."""
    if topology == "hierarchical" and worker_prompts:
        return hierarchical_trajectory(worker_prompts, final_prompts, m, pad_id, latent_id, offset_experts)
    return sequential_trajectory([*worker_prompts, final_prompts], m, pad_id, latent_id)


class Recomputed(NamedTuple):
    embeds: torch.Tensor  # (B, P, d) inputs with the latent columns filled
    means: torch.Tensor  # (B, n_latent, d) align(h) at each latent column, in column order


def fill_latents(model: PreTrainedModel, traj: Trajectory, latent_inputs: torch.Tensor) -> torch.Tensor:
    """The trajectory's input embeddings with the latent columns set to recorded inputs (B, n_latent, d).

    No forward: when the policy has not changed since the rollout, its recorded latents are exactly what
    `recompute` would derive, so training can skip the recurrence.
    """
    dev = model.get_input_embeddings().weight.device
    embeds = embed(model, traj.input_ids.to(dev))
    cols = torch.nonzero(traj.latent_mask.to(dev).any(0)).flatten()
    return embeds.index_copy(1, cols, latent_inputs.to(device=dev, dtype=embeds.dtype))


def recompute(
    model: PreTrainedModel,
    traj: Trajectory,
    align: Alignment,
    grad: bool = False,
    latent_inputs: torch.Tensor | None = None,
    substitute: Substitute | None = None,
) -> Recomputed:
    """The trajectory's input embeddings with every latent column filled by the recurrence.

    Latent columns are filled left to right: the prefix up to a latent column is run on a KV cache and
    its last-layer state at the previous column, aligned, becomes that column's input (its mean). With
    `latent_inputs` (B, n_latent, d), the recorded inputs of a noisy rollout are fed instead, and the
    means are what their exploration density is evaluated against. With `substitute` (a memory control)
    column k is fed substitute(align(h), k), as the engine fed it. With grad=True the gradient flows
    through all latent steps.
    """
    check_model(model)
    traj = traj.to(model.get_input_embeddings().weight.device)
    lat = traj.latent_mask
    embeds = embed(model, traj.input_ids)
    cols = torch.nonzero(lat.any(0)).flatten().tolist()
    if not cols:
        return Recomputed(embeds, embeds.new_zeros(len(embeds), 0, embeds.shape[-1]))
    if not bool((lat == lat[:1]).all()):
        raise ValueError("latent columns must be aligned across the batch")
    attn = traj.attention(model)
    parts, means, start = list(embeds.unbind(1)), [], 0
    with nullcontext() if grad else torch.no_grad():
        cache = new_cache()
        for k, c in enumerate(cols):
            if c > start:
                sub = slice_masks(attn, slice(start, c), slice(0, c))
                inputs = torch.stack(parts[start:c], 1)
                h = decoder_states(model, inputs, sub, traj.position_ids[:, start:c], cache)[:, -1]
            means.append(align(h))
            if latent_inputs is not None:
                parts[c] = latent_inputs[:, k].to(means[-1].dtype)
            else:
                parts[c] = means[-1] if substitute is None else substitute(means[-1], k)
            start = c
    return Recomputed(torch.stack(parts, 1), torch.stack(means, 1))
