"""Engine benchmarks on the embedded model, measured side by side in one process.

1. latent step vs decode step at the same context length (both: one forward of one position);
   steps alternate from the same cached state, the cache cropped back after each, medians reported.
2. questions/s of latent_mas at batch 1, 2, 4, 8, 16 on the same questions, outputs compared with batch 1,
   and the part of each question's time spent prefilling the agents' prompts (which batching cannot amortize
   where prefill is compute-bound).

    .venv/bin/python -m bench.engine [--context 256] [--repeats 40] [--questions 16] [--m 8]
        [--max-new-tokens 64] [--batches 1,2,4,8,16] [--dtype float32|bfloat16] [--device cuda] [--shape qwen3-4b]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench import shapes
from bench.method_costs import gsm8k_questions, run
from latentrl.latent import Memory, build_memory, get_alignment
from latentrl.mas import MethodConfig, Runtime, Sampling
from latentrl.mas.decode import pick
from latentrl.mas.prompts import latent_prompts
from latentrl.models import eos_token_ids


def crop(memory: Memory, length: int) -> None:
    memory.cache.crop(length - memory.mask.shape[1])  # negative: drop that many columns
    memory.mask = memory.mask[:, :length]
    memory.positions = memory.positions[:, :length]
    memory.next_pos = memory.mask.sum(1)


@torch.no_grad()
def step_times(model, batch: int, context: int, repeats: int) -> tuple[float, float]:
    """Median seconds of one latent step and one decode step, alternating, same context length."""
    align = get_alignment(model, "ridge")
    head = model.get_output_embeddings()
    memory = Memory.empty(model, batch, context + 8)
    ids = torch.randint(100, 1000, (batch, context), device=model.device)
    h = memory.forward_ids(ids, torch.ones_like(ids))[:, -1]
    one = torch.ones(batch, 1, dtype=torch.long, device=model.device)
    latent, decode = [], []
    for i in range(repeats + 3):
        for kind in ("latent", "decode") if i % 2 else ("decode", "latent"):
            t0 = time.perf_counter()
            if kind == "latent":
                memory.forward(align(h)[:, None], one)
            else:
                nxt = pick(head(h), Sampling(), None)
                memory.forward_ids(nxt[:, None], one)
            shapes.sync(model.device)
            dt = time.perf_counter() - t0
            crop(memory, context)
            if i >= 3:  # warm-up
                (latent if kind == "latent" else decode).append(dt)
    return statistics.median(latent), statistics.median(decode)


@torch.no_grad()
@torch.no_grad()
def prefill_seconds(lm, questions: list[str], fmt: str, batch: int) -> float:
    """Seconds per question spent prefilling the four agents' prompts (the memory at m = 0, no decode)."""
    rt = Runtime(lm.model, lm.tokenizer, eos_token_ids(lm.model, lm.tokenizer), MethodConfig())
    align = get_alignment(lm.model, "ridge")
    t0 = time.perf_counter()
    for s in range(0, len(questions), batch):
        workers, finals = latent_prompts(lm.tokenizer, "sequential", questions[s : s + batch], fmt)
        build_memory(lm.model, "sequential", workers, finals, 0, align, rt.pad_id)
    shapes.sync(lm.device)
    return (time.perf_counter() - t0) / len(questions)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batches", default="1,2,4,8,16", help="comma list; the first is the reference")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    shapes.add_args(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lm = shapes.load(args)
    print(f"model: {lm.name}, {args.dtype}, {args.device}, {torch.get_num_threads()} CPU threads")
    print(f"\n1. latent step vs decode step, context {args.context}, median of {args.repeats} alternating pairs")
    for batch in (1, 8):
        lat, dec = step_times(lm.model, batch, args.context, args.repeats)
        print(
            f"   batch {batch}: latent {lat * 1e3:.2f} ms, decode {dec * 1e3:.2f} ms, latent/decode = {lat / dec:.3f}"
        )
    questions, fmt = gsm8k_questions(args.questions)
    print(
        f"\n2. latent_mas questions/s, {len(questions)} GSM8K questions, "
        f"m={args.m}, max_new_tokens={args.max_new_tokens}"
    )
    ref_qps = ref_texts = None
    for batch in (int(b) for b in args.batches.split(",")):
        metrics, gens = run(lm, "latent_mas", questions, fmt, args.m, args.max_new_tokens, batch)
        texts = [g.text for g in gens]
        qps = 1 / metrics["s/q"]
        if ref_qps is None:
            ref_qps, ref_texts, ref_batch = qps, texts, batch
        same = sum(a == b for a, b in zip(ref_texts, texts))
        pre = prefill_seconds(lm, questions, fmt, batch)
        print(f"   batch {batch:2d}: {qps:.3f} questions/s, {qps / ref_qps:.2f}x batch {ref_batch}, "
              f"identical outputs {same}/{len(questions)}; agent prefills {pre:.2f} of {1 / qps:.2f} s/q")  # fmt: skip


if __name__ == "__main__":
    main()
