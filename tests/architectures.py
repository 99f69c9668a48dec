"""Tiny random models of the architectures the engine is verified on, each under the attention
implementations it supports.

Sliding windows are short (48) next to the rows the tests build (hundreds of columns with pads inside),
so they always cut; two layers of them still reach the planner in the short-prompt tests. float64
where transformers runs it (argmax is then not flipped by summation order); Gemma 2 runs in float32
with a tolerance (transformers' own eager masks give it NaN in float64; the engine's do not), and
Qwen3-MoE uses its eager experts, as the grouped matmul refuses float64.
"""

from __future__ import annotations

import torch
import transformers as T

WINDOW = 48
COMMON = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=1024,
    pad_token_id=0,
    bos_token_id=2,
    eos_token_id=3,
)
BOTH = ("eager", "sdpa")

# name: (config class, extra config, dtype, attention implementations)
ARCHS = {
    "llama": (T.LlamaConfig, dict(tie_word_embeddings=False), torch.float64, BOTH),
    "qwen2": (T.Qwen2Config, dict(tie_word_embeddings=True), torch.float64, BOTH),
    "qwen3": (
        T.Qwen3Config,
        dict(
            head_dim=16, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1, tie_word_embeddings=False
        ),
        torch.float64,
        BOTH,
    ),
    "qwen3_moe": (
        T.Qwen3MoeConfig,
        dict(head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32),
        torch.float64,
        BOTH,
    ),
    "mistral": (T.MistralConfig, dict(sliding_window=WINDOW), torch.float64, BOTH),
    "phi3": (T.Phi3Config, dict(sliding_window=WINDOW), torch.float64, BOTH),
    "gemma2": (
        T.Gemma2Config,
        dict(head_dim=16, sliding_window=WINDOW, tie_word_embeddings=False),
        torch.float32,
        ("eager",),
    ),
    "gemma3": (
        T.Gemma3TextConfig,
        dict(
            head_dim=16,
            sliding_window=WINDOW,
            layer_types=["sliding_attention", "full_attention"],
            tie_word_embeddings=False,
        ),
        torch.float64,
        BOTH,
    ),
    "olmo2": (T.Olmo2Config, {}, torch.float64, BOTH),
    "gpt_neox": (T.GPTNeoXConfig, dict(num_key_value_heads=None), torch.float64, BOTH),
}
CASES = [(name, impl) for name, (*_, impls) in ARCHS.items() for impl in impls]
SEEDS = {"qwen3": 2}  # seed 0 gives a tiny Qwen3 whose greedy text is the same for every question


def tiny(name: str, impl: str, vocab_size: int) -> torch.nn.Module:
    cls, extra, dtype, impls = ARCHS[name]
    assert impl in impls
    kw = {k: v for k, v in {**COMMON, **extra}.items() if v is not None}
    config = cls(vocab_size=vocab_size, **kw)
    config.initializer_range = 0.2  # sharper logits: greedy text varies with the prompt
    torch.manual_seed(SEEDS.get(name, 0))
    experts = {"experts_implementation": "eager"} if name == "qwen3_moe" else {}
    return T.AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=impl, **experts).eval()


def tolerance(model: torch.nn.Module) -> float:
    """Agreement expected between two computations of the same value (other shapes, other summation order):
    float64 is exact up to rounding, but eager's softmax runs in float32 even for a float64 model."""
    if model.dtype != torch.float64:
        return 2e-4
    return 1e-5 if model.config._attn_implementation == "eager" else 1e-9
