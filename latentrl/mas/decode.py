"""Batched text decoding on top of a memory: greedy or nucleus sampling, stop at EOS.

Finished rows leave the batch (their cache rows are dropped), so a long answer in one row does not
make the others pay. Rows never interact, so greedy output does not depend on the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from latentrl.latent.hooks import head_logits
from latentrl.latent.memory import Memory


@dataclass
class Sampling:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class Decoded:
    tokens: list[int]  # generated ids, EOS included when reached
    forwards: int  # decode forwards this row took part in (the prefill is counted by the caller)
    logprobs: list[float] = field(default_factory=list)  # if asked: log p(token) at the sampling temperature


# One generator for the batch, or one per question (its draws then do not depend on the batch it is in).
Generators = torch.Generator | list[torch.Generator] | None


def pick(
    logits: torch.Tensor, sampling: Sampling, generator: Generators, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, V) logits -> (B,) next ids. With a generator per question, `rows` are the batch rows' questions."""
    if sampling.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / sampling.temperature, -1)
    if sampling.top_p < 1:
        sorted_p, order = probs.sort(-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > sampling.top_p  # keep the smallest set reaching top_p
        probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0))
    if isinstance(generator, list):
        rows = range(len(probs)) if rows is None else rows.tolist()
        return torch.cat([torch.multinomial(p[None], 1, generator=generator[r]) for p, r in zip(probs, rows)])[:, 0]
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def decode(
    memory: Memory,
    h_last: torch.Tensor,
    eos_ids: list[int],
    sampling: Sampling,
    generator: Generators = None,
    logprobs: bool = False,
    on_step: Callable[[int, int], None] | None = None,
) -> list[Decoded]:
    """Generate from (B, d) last hidden states on `memory` (consumed: finished rows are dropped).

    Logits go through the model's own head path (`hooks.head_logits`: soft-capping, logit scaling).

    With `logprobs`, each token's log-probability under the full distribution at the sampling
    temperature (1 for greedy) is recorded: what an RL trainer recomputes for its ratios.
    `on_step(tokens generated, rows still running)` is called after every step (progress display).
    """
    n = memory.batch
    alive = torch.arange(n, device=h_last.device)  # original row of each batch row
    eos = torch.tensor(eos_ids, device=h_last.device)
    steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []  # (rows, tokens, logprobs) per step
    for step in range(sampling.max_new_tokens):
        logits = head_logits(memory.model, h_last)
        nxt = pick(logits, sampling, generator, alive)
        lp = None
        if logprobs:
            lp = torch.log_softmax(logits.float() / (sampling.temperature or 1.0), -1).gather(1, nxt[:, None])[:, 0]
        steps.append((alive, nxt, lp))
        keep = ~torch.isin(nxt, eos)
        if on_step is not None:
            on_step(step + 1, int(keep.sum()))
        if step == sampling.max_new_tokens - 1 or not bool(keep.any()):
            break
        if not bool(keep.all()):
            idx = keep.nonzero().flatten()
            memory.select(idx)
            alive, nxt = alive[idx], nxt[idx]
        ones = torch.ones(memory.batch, 1, dtype=torch.long, device=nxt.device)
        h_last = memory.forward_ids(nxt[:, None], ones)[:, -1]
    return _assemble(n, steps)


def _assemble(n: int, steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> list[Decoded]:
    """Per-row results from per-step tensors, in one pass after decoding (no per-step Python over rows).

    A row takes part in one decode forward per token after its first, so forwards = tokens - 1."""
    out = [Decoded([], 0) for _ in range(n)]
    for rows, toks, lps in steps:
        for row, tok in zip(rows.tolist(), toks.tolist()):
            out[row].tokens.append(tok)
        if lps is not None:
            for row, value in zip(rows.tolist(), lps.tolist()):
                out[row].logprobs.append(value)
    for d in out:
        d.forwards = max(len(d.tokens) - 1, 0)
    return out
