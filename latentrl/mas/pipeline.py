"""A batch's latent working memory, built once for evaluation (`latent_mas`) and GRPO (`latent_rollout`).

From the questions and the latent settings (`LatentSpec`) it renders the workers' and the final agent's
prompts, picks the alignment map, applies the memory control, runs the workers (their prompts and m
latent steps, with exploration noise when training asks for it) and prefills the final prompt: the
memory is then ready to decode. Rows that would run identical workers (the generations of one prompt in
GRPO) share one run when nothing random enters the latents, and are branched afterwards.

What varies per row travels beside the questions in `MemoryInputs` (the donor's question under
`shuffled`, the noise control's seed), never in a cache keyed by content.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from latentrl.latent import get_alignment
from latentrl.latent.controls import Substitute, filler_embedding, noise_directions, row_seed
from latentrl.latent.topology import LatentMemory, build_memory
from latentrl.mas.prompts import latent_prompts
from latentrl.mas.roles import topology
from latentrl.mas.spec import LatentSpec


@dataclass
class MemoryInputs:
    """Per-row inputs of the memory beside the questions (each list row-aligned with them, or None)."""

    questions: list[str] | None = None  # what each row's workers read (shuffled: its donor's question)
    seeds: list[int] | None = None  # the noise control's seed of each row (default: from its memory question)

    def rows(self, index: list[int]) -> MemoryInputs:
        pick = lambda xs: None if xs is None else [xs[i] for i in index]  # noqa: E731
        return MemoryInputs(pick(self.questions), pick(self.seeds))


@dataclass
class LatentBatch:
    workers: list[str]  # the roles that ran, in order
    worker_prompts: list[list[list[int]]]  # [agent][row] token ids (shuffled: the donor's)
    final_prompts: list[list[int]]  # [row]
    memory: LatentMemory  # one row per question, ready to decode (unless prefill_final=False)
    substitute: Substitute | None  # the memory control's latent inputs, per row (noise, pause)


def latent_memory(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    spec: LatentSpec,
    questions: list[str],
    answer_format: str,
    pad_id: int,
    inputs: MemoryInputs | None = None,
    noise_std: float = 0.0,
    reserve: int = 0,
    share: bool = True,
    prefill_final: bool = True,
) -> LatentBatch:
    """The latent memory of a batch of questions under `spec`.

    `noise_std`: exploration noise on the latent inputs (training). `reserve`: KV room for the decode.
    `share`: rows with identical workers' inputs run them once (never with exploration noise).
    `prefill_final=False` leaves the final prompt out (the vLLM backend prefills it from embeddings)."""
    inputs = inputs or MemoryInputs()
    control, m, lay = spec.memory_control, spec.latent_steps, spec.layout
    if control == "shuffled" and inputs.questions is None:
        raise ValueError("memory control shuffled needs each question's donor (MemoryInputs.questions)")
    memory_questions = inputs.questions or questions
    *roles, _ = topology(spec.topology)
    workers = roles if lay.workers_run else []
    worker_prompts, final_prompts = latent_prompts(
        tokenizer, spec.topology, questions, answer_format, spec.enable_thinking, spec.prompt_set, lay,
        memory_questions=memory_questions,
    )  # fmt: skip
    substitute = None
    if control == "noise" and workers:
        seeds = inputs.seeds or [row_seed(0, q) for q in memory_questions]
        substitute = Substitute("noise", noise_directions(seeds, len(workers) * m, model.config.hidden_size))
    elif control == "pause" and workers:
        substitute = Substitute("pause", filler=filler_embedding(model, tokenizer))
    # Rows with the same workers' inputs (and the same final prompt) compute the same memory.
    keys = [(memory_questions[i], questions[i], i if control == "noise" else None) for i in range(len(questions))]
    distinct: dict[tuple, int] = {}
    index = [distinct.setdefault(k, len(distinct)) for k in keys]
    shared = share and not noise_std and len(distinct) < len(keys)
    first = [index.index(k) for k in range(len(distinct))] if shared else list(range(len(keys)))
    mem = build_memory(
        model, lay.topology, [[w[i] for i in first] for w in worker_prompts], [final_prompts[i] for i in first], m,
        get_alignment(model, spec.align, spec.align_lambda), pad_id, noise_std, 0 if shared else reserve,
        spec.expert_positions == "offset", None if substitute is None else substitute.rows(first), prefill_final,
    )  # fmt: skip
    if shared:
        mem = mem.rows(torch.tensor(index, device=mem.memory_length.device), extra=reserve)
    return LatentBatch(workers, worker_prompts, final_prompts, mem, substitute)
