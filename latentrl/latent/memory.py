"""Latent working memory: a batch's KV cache with its explicit mask and positions, and the latent step.

Every forward of the engine (prompt prefill, latent step, decode step) goes through `Memory.forward`,
which appends the new columns' mask, derives positions from the mask and returns only the last-layer
(post final norm) hidden states. Padding is never inferred from token ids (pad may equal EOS).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from latentrl.latent.align import Alignment
from latentrl.latent.controls import Feed
from latentrl.latent.hooks import check_model, decoder_states, embed
from latentrl.latent.masks import attention_masks, own_masks, visible


class GrowingLayer(DynamicLayer):
    """A DynamicLayer that appends into spare capacity instead of re-concatenating the whole cache.

    HF's DynamicLayer copies all past keys/values on every decode step (torch.cat); at batch 8 and a
    context of ~800 that was 14 ms of an 89 ms step on the embedded model. Here `keys`/`values` are
    views of the filled part of a buffer. The buffer is sized once to `capacity` when the caller knows
    the final length (then it is never copied and holds just the KV), else it doubles when full.
    """

    def __init__(self, capacity: int = 0):
        super().__init__()
        self._capacity = capacity

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._k = self._v = None
            self._n = 0
        n, t = self._n, key_states.shape[-2]
        if self._k is None or n + t > self._k.shape[-2]:
            cap = self._capacity if self._k is None and n + t <= self._capacity else max(2 * (n + t), 64)
            k = key_states.new_empty(*key_states.shape[:-2], cap, key_states.shape[-1])
            v = value_states.new_empty(*value_states.shape[:-2], cap, value_states.shape[-1])
            if n:
                k[..., :n, :] = self._k[..., :n, :]
                v[..., :n, :] = self._v[..., :n, :]
            self._k, self._v = k, v
        self._k[..., n : n + t, :] = key_states
        self._v[..., n : n + t, :] = value_states
        self._n = n + t
        self.keys, self.values = self._k[..., : self._n, :], self._v[..., : self._n, :]
        return self.keys, self.values

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        if self.is_initialized:
            self._n = self.keys.shape[-2]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows `indices` (ascending) by moving their filled columns to the front of the same buffer:
        no second full-size buffer, and the spare capacity is not copied."""
        if self.is_initialized and self._k is not None:
            r, n = len(indices), self._n
            for buf in (self._k, self._v):
                buf[:r, :, :n] = buf[indices, :, :n]
            self._k, self._v = self._k[:r], self._v[:r]
            self.keys, self.values = self._k[..., :n, :], self._v[..., :n, :]


def new_cache(capacity: int = 0) -> DynamicCache:
    """An empty DynamicCache; its layers are GrowingLayers of `capacity` columns (0: unknown) unless grad is
    on (in-place appends break autograd)."""
    cache = DynamicCache()
    if not torch.is_grad_enabled():
        cache.layer_class_to_replicate = functools.partial(GrowingLayer, capacity)
    return cache


@dataclass
class Memory:
    """KV cache of a batch plus a (B, L) mask of its real columns, their position ids and each row's next one.

    Positions count real columns; hierarchical memories built by `concat_rows` hold branches that may
    overlap in position, so positions are carried per column rather than derived from the mask.
    """

    model: PreTrainedModel
    mask: torch.Tensor  # (B, L) long, 1 = real column
    next_pos: torch.Tensor  # (B,) long
    positions: torch.Tensor  # (B, L) long, position id of every column
    cache: DynamicCache = field(default_factory=new_cache)
    forwards: int = 0  # forward calls made on this memory (batched calls count once)

    @classmethod
    def empty(cls, model: PreTrainedModel, batch: int, capacity: int = 0) -> Memory:
        """A memory with no columns; `capacity` is the column count it will reach, when known (sizes the KV once).
        Refuses a model the engine cannot run exactly (`hooks.check_model`)."""
        check_model(model)
        dev = model.get_input_embeddings().weight.device
        mask = torch.zeros(batch, 0, dtype=torch.long, device=dev)
        return cls(model, mask, torch.zeros(batch, dtype=torch.long, device=dev), mask.clone(), new_cache(capacity))

    @property
    def batch(self) -> int:
        return self.mask.shape[0]

    def real_length(self) -> torch.Tensor:
        """(B,) number of real (non-pad) columns per row."""
        return self.mask.sum(1)

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Append (B, T, d) input embeddings with their (B, T) mask; return (B, T, d) last-layer states."""
        pos = (self.next_pos[:, None] + mask.cumsum(1) - 1).clamp_min(0)
        width = self.mask.shape[1]
        self.mask = torch.cat([self.mask, mask], 1)
        self.positions = torch.cat([self.positions, pos], 1)
        self.next_pos = self.next_pos + mask.sum(1)
        attn = self.mask  # transformers builds exact masks from it (see `own_masks`)
        if own_masks(self.model):
            cols = torch.arange(width, self.mask.shape[1], device=mask.device)
            attn = attention_masks(self.model, visible(self.mask, cols), pos, self.positions)
        self.forwards += 1
        return decoder_states(self.model, embeds, attn, pos, self.cache)

    def forward_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Like `forward` for token ids; pad columns are embedded but masked everywhere."""
        return self.forward(embed(self.model, ids), mask)

    def select(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (1-D indices), e.g. to drop finished rows from a decode batch."""
        self.cache.batch_select_indices(rows)
        self.mask = self.mask[rows]
        self.positions = self.positions[rows]
        self.next_pos = self.next_pos[rows]

    def rows(self, index: torch.Tensor, extra: int = 0) -> Memory:
        """A new memory whose row i is row index[i] of this one (rows may repeat), with room for `extra`
        more columns. Lets the generations of one prompt share a single run of its workers."""
        cache = new_cache(self.mask.shape[1] + extra)
        for i, (k, v) in enumerate(self.layers()):
            cache.update(k[index], v[index], i)
        return Memory(self.model, self.mask[index], self.next_pos[index], self.positions[index], cache, self.forwards)

    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (keys, values), each (B, heads, L, head_dim)."""
        return [(layer.keys, layer.values) for layer in self.cache.layers]


def latent_steps(
    memory: Memory, h_last: torch.Tensor, m: int, align: Alignment, noise_std: float = 0.0, feed: Feed | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run m latent steps from the (B, d) last hidden state; return the (B, m, d) latent input embeddings
    and the (B,) fp64 log-density of their exploration noise up to its constant (0 without noise).

    Step k feeds align(h) (+ N(0, noise_std^2 I) when exploring; or `feed(align(h), k)` under a memory
    control) as the next input embedding and reads the new last-layer state. The KV of every latent
    column stays in `memory`: it is the working memory handed to the next agent.
    """
    inputs = []
    logdensity = h_last.new_zeros(memory.batch, dtype=torch.float64)
    ones = torch.ones(memory.batch, 1, dtype=torch.long, device=h_last.device)
    for k in range(m):
        mean = align(h_last) if feed is None else feed(align(h_last), k)
        e = mean + noise_std * torch.randn_like(mean) if noise_std else mean
        if noise_std:
            logdensity = logdensity + gaussian_log_kernel(e, mean, noise_std)
        inputs.append(e[:, None])
        h_last = memory.forward(e[:, None], ones)[:, -1]
    if not inputs:
        return h_last.new_zeros(memory.batch, 0, h_last.shape[-1]), logdensity
    return torch.cat(inputs, 1), logdensity


def gaussian_log_kernel(x: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log N(x; mean, std^2 I) without its constant, summed over every axis but the first, in fp64.

    The constant (about 1e4 nats for a few latent steps) cancels in every ratio and KL, and in fp32 it
    would swamp the part that varies with the policy."""
    z = ((x.double() - mean.double()) / std).flatten(1)
    return -0.5 * (z * z).sum(1)


def concat_rows(memory: Memory, groups: int, extra: int = 0) -> Memory:
    """Fold rows [q0g0, q0g1, ..., q1g0, ...] into one row per question by concatenating the groups' KV,
    with room for `extra` more columns.

    Used by the hierarchical topology: experts run as independent rows (they cannot see each other),
    then the summarizer reads all of them. Its positions continue after the furthest expert branch.
    """
    b = memory.batch // groups
    cache = new_cache(groups * memory.mask.shape[1] + extra)
    for i, (k, v) in enumerate(memory.layers()):
        cache.update(_fold(k, b, groups), _fold(v, b, groups), i)
    mask = memory.mask.reshape(b, -1)
    next_pos = memory.next_pos.view(b, groups).max(1).values
    return Memory(memory.model, mask, next_pos, memory.positions.reshape(b, -1), cache, memory.forwards)


def _fold(t: torch.Tensor, b: int, groups: int) -> torch.Tensor:
    """(b*groups, heads, L, d) -> (b, heads, groups*L, d), groups laid side by side along the sequence."""
    _, h, L, d = t.shape
    return t.view(b, groups, h, L, d).transpose(1, 2).reshape(b, h, groups * L, d)
