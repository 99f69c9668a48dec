"""The three methods on one footing: same roles, same rendering, same decoding, same accounting.

- `single`: one agent, chain of thought.
- `text_mas`: agents talk in text; each reads the earlier agents' outputs (sequential) or the
  summarizer reads all experts' outputs (hierarchical).
- `latent_mas`: non-final agents write no text; they run m latent steps and leave their KV cache as
  shared memory, which the final agent reads before it decodes.

A method maps a batch of questions to one `Generation` per question. Register new ones with
`@register("name")`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from latentrl.latent import left_pad
from latentrl.latent.diagnostics import latent_stats
from latentrl.latent.memory import Memory
from latentrl.mas.decode import Decoded, Generators, Sampling, decode
from latentrl.mas.pipeline import MemoryInputs, latent_memory
from latentrl.mas.prompts import check_think, render, text_context, think_truncated
from latentrl.mas.roles import SOLVER, topology
from latentrl.mas.spec import LatentSpec
from latentrl.mas.vllm_decode import check_backend, decode_final
from latentrl.models import pad_token_id
from latentrl.tasks.answers import strip_think


@dataclass
class MethodConfig(LatentSpec):
    """The latent settings (`LatentSpec`) plus what only a method's decoding needs."""

    strip_think: bool = field(default=True, metadata={"help": "text_mas: drop <think> blocks from passed-on text"})
    sampling: Sampling = field(default_factory=Sampling)
    backend: str = field(default="hf", metadata={"help": "latent_mas final-agent decode: hf | vllm (sequential)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backend == "vllm" and self.semantics == "reference":
            raise ValueError("--backend vllm runs --semantics current only; use --backend hf for the reference")
        if self.backend == "vllm" and self.memory_control != "none":
            raise ValueError("--backend vllm runs --memory-control none only; use --backend hf for the controls")
        check_backend(self.backend, self.topology)


@dataclass
class AgentTrace:
    role: str
    output_tokens: int
    forwards: int
    latent_steps: int = 0
    text: str | None = None
    kv_length: int = 0  # KV entries this agent added: its prompt, latent steps and generated tokens
    think_truncated: bool = False  # its text ends inside a <think> block (the budget ran out while thinking)


@dataclass
class Generation:
    text: str  # the final agent's answer text
    agents: list[AgentTrace]
    memory_length: int | None = None  # latent_mas: real KV columns the final agent read
    latent_norm: float | None = None  # latent_mas: mean L2 norm of the latent inputs
    latent_cos: float | None = None  # latent_mas: mean cosine of latents to their nearest token embedding

    @property
    def output_tokens(self) -> int:
        return sum(a.output_tokens for a in self.agents)

    @property
    def think_truncated(self) -> bool:
        """The final agent ran out of budget inside a <think> block: its answer is missing, not wrong."""
        return self.agents[-1].think_truncated

    @property
    def forwards(self) -> int:
        return sum(a.forwards for a in self.agents)

    @property
    def latent_steps_total(self) -> int:
        """Latent steps over all agents of this question (m per worker)."""
        return sum(a.latent_steps for a in self.agents)

    @property
    def kv_length(self) -> int:
        """KV entries materialized for this question, over all agents (cost of memory, comparable across methods)."""
        return sum(a.kv_length for a in self.agents)


@dataclass
class Runtime:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    eos_ids: list[int]
    config: MethodConfig
    progress: Callable[[str, int, int], None] | None = None  # (agent, tokens generated, rows still running)

    def on_step(self, role: str) -> Callable[[int, int], None] | None:
        """`decode`'s per-step callback for agent `role`, when progress is shown."""
        return None if self.progress is None else functools.partial(self.progress, role)

    def __post_init__(self) -> None:
        check_think(self.tokenizer, self.config.enable_thinking)  # before any work

    @property
    def pad_id(self) -> int:
        return pad_token_id(self.tokenizer, self.eos_ids)


Method = Callable[..., list[Generation]]  # (runtime, questions, answer_format, generators, memory inputs)
METHODS: dict[str, Method] = {}


def register(name: str) -> Callable[[Method], Method]:
    def deco(fn: Method) -> Method:
        METHODS[name] = fn
        return fn

    return deco


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}'; choose one of {sorted(METHODS)}")
    return METHODS[name]


def _text(rt: Runtime, d: Decoded) -> str:
    return rt.tokenizer.decode([t for t in d.tokens if t not in rt.eos_ids], skip_special_tokens=True)


def _speak(rt: Runtime, role: str, messages: list[str], gen: Generators) -> list[AgentTrace]:
    """One text agent turn per message, batched: fresh memory, prefill, decode."""
    system = rt.config.prompt_set.system
    prompts = [render(rt.tokenizer, msg, rt.config.enable_thinking, system) for msg in messages]
    ids, mask = left_pad(prompts, rt.pad_id, rt.model.device)
    memory = Memory.empty(rt.model, len(messages), ids.shape[1] + rt.config.sampling.max_new_tokens)
    h = memory.forward_ids(ids, mask)[:, -1]
    decoded = decode(memory, h, rt.eos_ids, rt.config.sampling, gen, on_step=rt.on_step(role))
    return [_trace(rt, role, d, p) for d, p in zip(decoded, prompts)]


def _trace(rt: Runtime, role: str, d: Decoded, prompt: list[int]) -> AgentTrace:
    text = _text(rt, d)
    truncated = think_truncated(rt.tokenizer, prompt, text)
    return AgentTrace(role, len(d.tokens), 1 + d.forwards, 0, text, len(prompt) + len(d.tokens), truncated)


@register("single")
@torch.no_grad()
def single(
    rt: Runtime, questions: list[str], answer_format: str, gen: Generators = None, memory: MemoryInputs | None = None
) -> list[Generation]:
    msgs = [rt.config.prompt_set.message(SOLVER, q, answer_format=answer_format) for q in questions]
    said = _speak(rt, SOLVER, msgs, gen)
    return [Generation(t.text, [t]) for t in said]


@register("text_mas")
@torch.no_grad()
def text_mas(
    rt: Runtime, questions: list[str], answer_format: str, gen: Generators = None, memory: MemoryInputs | None = None
) -> list[Generation]:
    topo, prompts = rt.config.topology, rt.config.prompt_set
    *workers, final = topology(topo)
    traces: list[list[AgentTrace]] = [[] for _ in questions]
    passed: list[list[tuple[str, str]]] = [[] for _ in questions]  # what each question's next agents read
    hierarchical = topo == "hierarchical"
    for role in workers:
        msgs = [
            prompts.message(f"{topo}/{role}", q, None if hierarchical else text_context(p), answer_format)
            for q, p in zip(questions, passed)
        ]
        for i, t in enumerate(_speak(rt, role, msgs, gen)):
            traces[i].append(t)
            passed[i].append((role, strip_think(t.text) if rt.config.strip_think else t.text))
    msgs = [prompts.message(f"{topo}/{final}", q, text_context(p), answer_format) for q, p in zip(questions, passed)]
    return [Generation(t.text, traces[i] + [t]) for i, t in enumerate(_speak(rt, final, msgs, gen))]


@register("latent_mas")
@torch.no_grad()
def latent_mas(
    rt: Runtime, questions: list[str], answer_format: str, gen: Generators = None, memory: MemoryInputs | None = None
) -> list[Generation]:
    """`memory`: per question, what its workers read (the `shuffled` control's donors) and the noise seed."""
    cfg = rt.config
    *workers, final = topology(cfg.topology)
    if rt.progress is not None and cfg.layout.workers_run:
        rt.progress("+".join(workers) + " (latent)", 0, len(questions))
    vllm = cfg.backend == "vllm"  # the same latents; vLLM prefills the whole context from its embeddings
    batch = latent_memory(
        rt.model, rt.tokenizer, cfg, questions, answer_format, rt.pad_id, memory,
        reserve=cfg.sampling.max_new_tokens, prefill_final=not vllm,
    )  # fmt: skip
    lm, m = batch.memory, cfg.latent_steps if batch.workers else 0
    if vllm:
        decoded = decode_final(rt, batch.worker_prompts, batch.final_prompts, lm.latents, gen)
    else:
        decoded = decode(lm.memory, lm.h_last, rt.eos_ids, cfg.sampling, gen, on_step=rt.on_step(final))
    norm, cos = latent_stats(rt.model, torch.cat(lm.latents, 1)) if m else (None, None)
    out = []
    for i, d in enumerate(decoded):
        agents = [
            AgentTrace(r, 0, 1 + m, m, None, len(batch.worker_prompts[k][i]) + m) for k, r in enumerate(batch.workers)
        ]
        agents.append(_trace(rt, final, d, batch.final_prompts[i]))
        stats = {} if m == 0 else {"latent_norm": float(norm[i]), "latent_cos": float(cos[i])}
        out.append(Generation(agents[-1].text, agents, int(lm.memory_length[i]), **stats))
    return out
