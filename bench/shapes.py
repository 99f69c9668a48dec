"""The model a benchmark times: the embedded model, or a real model's shape with random weights.

A machine that reaches no hub (a lent GPU, CI) can still time the shapes that matter: `--shape qwen3-4b` builds
Qwen3-4B's architecture (layers, widths, heads, GQA, tied head) with random weights and the embedded model's
tokenizer, so prompts and chat template are the same as with the embedded model. The vocabulary is the tokenizer's
(49k rows instead of Qwen3's 152k: a smaller head and embedding). Random weights write random text, so EOS is
rare and outputs run to `max_new_tokens`: fixed output lengths, meaningless answers. Only timings and memory are
worth reading.
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoModelForCausalLM, Qwen3Config

from latentrl.models import LoadedModel, load_model

# Qwen3 model cards' config.json values (architecture only).
SHAPES = {
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, tie_word_embeddings=True),
    "qwen3-4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, tie_word_embeddings=True),
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, tie_word_embeddings=False),
}  # fmt: skip


def add_args(ap: argparse.ArgumentParser) -> None:
    """--device, --dtype and --shape, shared by the benchmarks."""
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--shape", choices=sorted(SHAPES), help="a real model's shape with random weights")


def load(args: argparse.Namespace) -> LoadedModel:
    embedded = load_model(device=args.device if not args.shape else "cpu", dtype=args.dtype)
    if not args.shape:
        return embedded
    tok = embedded.tokenizer
    config = Qwen3Config(vocab_size=len(tok), head_dim=128, **SHAPES[args.shape])
    config.bos_token_id, config.eos_token_id, config.pad_token_id = tok.bos_token_id, tok.eos_token_id, None
    torch.manual_seed(0)
    with torch.device(args.device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, args.dtype))
    return LoadedModel(model.eval(), tok, f"{args.shape} (random weights)")


def sync(device: torch.device | str) -> None:
    """Wait for queued GPU work, so wall-clock timers measure it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
