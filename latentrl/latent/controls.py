"""Memory-content controls: is it the *content* of the latent memory that the final agent uses?

An accuracy change with m may come from extra context, extra compute or formatting rather than from
what the workers thought. Each control keeps the budget and changes one thing:

- `none`: the pipeline as it is.
- `shuffled`: question i's final agent reads the memory the workers built for another question of the
  same data set, its *donor* (`donors`: a derangement fixed by the seed and the question ids).
- `no_memory`: the final agent alone on its own prompt (no worker runs, no earlier prompts).
- `noise`: the workers' prompts as usual, each latent input replaced by a random direction scaled to the
  norm the real latent has at that step (same positions, same compute, no content).
- `pause`: each latent input replaced by one fixed filler-token embedding (compute without content, as
  pause tokens are).

The replacement of latent inputs (`Substitute`) is one function used by the engine's latent steps and by
the training recompute, so a rollout under a control is recomputed exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from latentrl.latent.hooks import embed

CONTROLS = ("none", "shuffled", "no_memory", "noise", "pause")
REPLACES_LATENTS = ("noise", "pause")  # controls that replace latent inputs (they need m > 0)
FILLER_TEXT = "."  # the pause control's filler token: the last id of this text's encoding


def control_problems(control: str, semantics: str, m: int) -> list[str]:
    """Combinations where a control is undefined or the same as `none`, one line each."""
    if control == "none":
        return []
    if semantics == "reference" and m == 0:
        return [f"memory control {control}: reference semantics at m = 0 has no memory (the final agent runs alone)"]
    if control in REPLACES_LATENTS and m == 0:
        return [f"memory control {control} replaces latent inputs: it needs latent steps > 0 (m = 0 has none)"]
    return []


def _rank(seed: int, qid: str) -> bytes:
    return hashlib.sha256(f"donor/{seed}/{qid}".encode()).digest()


def donors(ids: Sequence[str], seed: int) -> dict[str, str]:
    """{question id: donor id}: each question's memory comes from another question of the data set.

    The ids are ordered by a hash of (seed, id) and each takes the next one's memory, cyclically: a
    derangement (no fixed point for two or more distinct ids) that depends only on the seed and the set
    of ids, never on batching, order or resume."""
    order = sorted(set(ids), key=lambda q: _rank(seed, q))
    if len(order) < 2:
        raise ValueError("memory control shuffled needs at least two distinct questions to swap memories")
    return {q: order[(i + 1) % len(order)] for i, q in enumerate(order)}


def row_seed(seed: int, qid: str) -> int:
    """The noise control's seed for a question: from the run seed and the id only (batch-invariant)."""
    return int.from_bytes(hashlib.sha256(f"noise/{seed}/{qid}".encode()).digest()[:8], "big") >> 1


def noise_directions(seeds: Sequence[int], n_latent: int, dim: int) -> torch.Tensor:
    """(B, n_latent, d) unit vectors, row b drawn from its own generator seeded by seeds[b] (on the CPU,
    in fp32, so a row's directions do not depend on the batch, the device or the dtype)."""
    rows = [torch.randn(n_latent, dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def filler_embedding(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """(d,) the pause control's input: the embedding of the filler token, as the model feeds it."""
    filler = tokenizer.encode(FILLER_TEXT, add_special_tokens=False)[-1]
    dev = model.get_input_embeddings().weight.device
    return embed(model, torch.tensor([[filler]], device=dev))[0, 0].detach()


Feed = Callable[[torch.Tensor, int], torch.Tensor]  # (mean (B, d), latent column k) -> input (B, d)


@dataclass(frozen=True)
class Substitute:
    """What a latent column is fed instead of its content under `noise` or `pause`.

    noise: `directions` (B, n_latent, d) unit vectors, input_k = direction_k * ||align(h_k)||, so the
    input has the real latent's norm at that step; the recompute reads the directions back from the
    recorded inputs (`from_recorded`), exact for any policy. pause: input_k = `filler` (d,), always."""

    kind: str
    directions: torch.Tensor | None = None
    filler: torch.Tensor | None = None

    def __call__(self, mean: torch.Tensor, k: int) -> torch.Tensor:
        if self.kind == "pause":
            return self.filler.to(device=mean.device, dtype=mean.dtype).expand_as(mean)
        direction = self.directions[:, k].to(device=mean.device, dtype=mean.dtype)
        return direction * mean.norm(dim=-1, keepdim=True)

    def rows(self, index: torch.Tensor | slice) -> Substitute:
        """The same substitute for rows `index` of the batch."""
        if self.directions is None:
            return self
        return Substitute(self.kind, self.directions[index], self.filler)

    def at(self, offset: int) -> Feed:
        """The feed of one agent whose latent columns start at `offset` of the row's latent columns."""
        return lambda mean, k: self(mean, offset + k)

    def flat(self, groups: int, m: int) -> Feed:
        """The feed of parallel expert rows (question-major, `groups` experts of m steps each)."""
        if self.directions is None:
            return self.at(0)
        b, _, d = self.directions.shape
        flat = Substitute(self.kind, self.directions.reshape(b * groups, m, d), self.filler)
        return flat.at(0)

    @classmethod
    def from_recorded(cls, kind: str, latents: torch.Tensor | None, filler: torch.Tensor | None) -> Substitute:
        """The substitute that fed `latents` (B, n_latent, d) in a rollout, for the training recompute."""
        if kind == "noise":
            return cls(kind, torch.nn.functional.normalize(latents.float(), dim=-1))
        return cls(kind, filler=filler)
