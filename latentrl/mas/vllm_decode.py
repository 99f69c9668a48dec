"""The final agent's decode on vLLM, fed the latent working memory as prompt embeddings.

Why this works: in the sequential topology the final agent's context is one causal sequence of input
embeddings: agent 1's prompt tokens, its m latent inputs, agent 2's prompt tokens, ..., the final prompt
(`latentrl.latent.trajectory` lays it out; pad columns are masked and do not advance positions). vLLM
accepts exactly that as `{"prompt_embeds": (L, d)}`, so the latents are computed by the HF latent loop
(`build_memory`, as in the HF path) and only the decode, usually most of the time, moves to vLLM.

What it does not do: the hierarchical topology's experts must not see each other (a branch mask, two
experts at the same positions); a causal prompt cannot express that, so that topology is refused.
LoRA adapters are refused too: vLLM loads the weights from the model's path, not the merged ones in memory.

vllm is an optional GPU profile with its own transformers pin (profiles/vllm.txt); it is imported only
when the engine starts, and a missing install is reported before any model loads.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedModel

from latentrl.latent.trajectory import fill_latents, sequential_trajectory
from latentrl.mas.decode import Decoded, Sampling

if TYPE_CHECKING:
    from latentrl.mas.methods import Runtime

BACKENDS = ("hf", "vllm")
INSTALL = (
    "the vllm backend needs the GPU profile: `VENV=.venv-vllm PROFILE=vllm scripts/bootstrap.sh` "
    "(vllm==0.32.0 with its transformers pin, see profiles/vllm.txt), then run .venv-vllm/bin/latentrl"
)


class VLLMUnavailable(RuntimeError):
    """vllm is not installed in this environment; the message says how to install the profile."""


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def check_backend(backend: str, topology: str) -> None:
    """Everything about a backend choice that can be checked before a model loads."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}'; choose one of {BACKENDS}")
    if backend != "vllm":
        return
    if topology != "sequential":
        raise ValueError(
            f"the vllm backend supports the sequential topology only, not '{topology}': its experts must not "
            "see each other (a branch attention mask), which a causal prompt-embeds sequence cannot express; "
            "use --backend hf for it"
        )
    if not vllm_installed():
        raise VLLMUnavailable(INSTALL)


@torch.no_grad()
def prefix_embeds(
    model: PreTrainedModel,
    worker_prompts: list[list[list[int]]],
    final_prompts: list[list[int]],
    latents: list[torch.Tensor],
    pad_id: int,
) -> list[torch.Tensor]:
    """Per question, the (L, d) input embeddings of the final agent's whole context, pads dropped.

    `latents[k]` is worker k's (B, m, d) latent inputs from the HF latent loop. The layout is the shared
    trajectory's: its latent columns are filled in order and its real columns kept, so position j of the
    result is position j of the HF memory (positions there are the running count of real columns).
    """
    m = latents[0].shape[1] if latents else 0
    traj = sequential_trajectory([*worker_prompts, final_prompts], m, pad_id, latent_id=pad_id)
    embeds = fill_latents(model, traj, torch.cat(latents, 1))
    keep = traj.attention_mask.to(embeds.device).bool()
    return [row[k] for row, k in zip(embeds, keep)]


_ENGINES: dict[tuple[str, str], object] = {}


def engine(model: PreTrainedModel):
    """One vLLM engine per (checkpoint, dtype), started on first use and kept (starting one takes a while).

    It shares the GPU with the HF model that computes the latents, so it takes a fraction of the GPU
    memory: LATENTRL_VLLM_GPU_MEMORY (default 0.5).
    """
    path, dtype = model.name_or_path, str(model.dtype).removeprefix("torch.")
    if not path:
        raise ValueError(
            "the vllm backend loads the weights from the model's checkpoint, and this model has none "
            "(empty name_or_path): save_pretrained it and load it from that directory"
        )
    if (path, dtype) not in _ENGINES:
        if not vllm_installed():
            raise VLLMUnavailable(INSTALL)
        from vllm import LLM

        _ENGINES[path, dtype] = LLM(
            model=path,
            dtype=dtype,
            enable_prompt_embeds=True,
            gpu_memory_utilization=float(os.environ.get("LATENTRL_VLLM_GPU_MEMORY", "0.5")),
        )
    return _ENGINES[path, dtype]


def sampling_params(sampling: Sampling, eos_ids: list[int], seeds: list[int]) -> list:
    """One vLLM SamplingParams per question, as the HF decode samples: stop at any EOS id, EOS kept."""
    from vllm import SamplingParams

    return [
        SamplingParams(
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=seed,
            stop_token_ids=list(eos_ids),
        )
        for seed in seeds
    ]


def decode_final(
    rt: Runtime,
    worker_prompts: list[list[list[int]]],
    final_prompts: list[list[int]],
    latents: list[torch.Tensor],
    gen: torch.Generator | list[torch.Generator] | None = None,
) -> list[Decoded]:
    """The final agent's tokens for each question, decoded by vLLM from the latent prefix.

    Returns what the HF `decode` returns, so `latent_mas` builds the same `Generation`s; forwards are
    counted as in the HF path (one per token after the first; the prefill is counted by the caller).
    Sampling seeds are drawn per question from `gen` (reproducible per run); greedy ignores them.
    """
    embeds = prefix_embeds(rt.model, worker_prompts, final_prompts, latents, rt.pad_id)
    n = len(embeds)
    if gen is None:
        seeds = [rt.config.sampling.seed * 1_000_003 + i for i in range(n)]
    elif isinstance(gen, list):  # one generator per question
        seeds = [int(torch.randint(2**31 - 1, (1,), generator=g, device=g.device)) for g in gen]
    else:
        seeds = torch.randint(2**31 - 1, (n,), generator=gen, device=gen.device).tolist()
    llm = engine(rt.model)
    outs = llm.generate(
        [{"prompt_embeds": e.cpu()} for e in embeds],
        sampling_params(rt.config.sampling, rt.eos_ids, seeds),
        use_tqdm=False,
    )
    tokens = [list(out.outputs[0].token_ids) for out in outs]
    return [Decoded(t, max(len(t) - 1, 0)) for t in tokens]
