"""LatentMAS vs TextMAS vs single on the same questions, model, backend and batch: wall-clock, tokens, forwards.

    .venv/bin/python -m bench.method_costs [--questions 16] [--m 8,20] [--max-new-tokens 256] [--batch-size 8]
        [--dtype float32|bfloat16] [--device cuda] [--shape qwen3-4b]

All three run in this one process on the same GSM8K questions, greedy; the printed ratios are
text_mas / latent_mas (speed-up) and 1 - tokens(latent_mas) / tokens(text_mas) (token saving), for each
m in the `--m` list (the paper's m = 20 and a smaller one).
"""

from __future__ import annotations

import argparse
import time

import torch

from bench import shapes
from latentrl.mas import Generation, MethodConfig, Runtime, Sampling, get_method
from latentrl.models import eos_token_ids
from latentrl.tasks import get_task


def gsm8k_questions(n: int) -> tuple[list[str], str]:
    """The first n GSM8K test questions (offline copy), longest first as the runner batches them, and their
    answer format."""
    task = get_task("gsm8k")
    questions = sorted((e.question for e in task.load("offline", None)[:n]), key=len, reverse=True)
    return questions, task.answer_format


def run(
    lm, method: str, questions: list[str], fmt: str, m: int, max_new: int, batch: int, topology: str = "sequential"
) -> tuple[dict, list[Generation]]:
    """One method over `questions` in batches, greedy: per-question cost figures and the generations."""
    cfg = MethodConfig(topology, latent_steps=m, sampling=Sampling(max_new_tokens=max_new))
    rt = Runtime(lm.model, lm.tokenizer, eos_token_ids(lm.model, lm.tokenizer), cfg)
    fn = get_method(method)
    t0 = time.perf_counter()
    gens = []
    for s in range(0, len(questions), batch):
        gens += fn(rt, questions[s : s + batch], fmt, None)
    shapes.sync(lm.device)
    seconds = time.perf_counter() - t0
    n = len(questions)
    metrics = {
        "s/q": seconds / n,
        "tokens/q": sum(g.output_tokens for g in gens) / n,
        "forwards/q": sum(g.forwards for g in gens) / n,
        "kv/q": sum(g.kv_length for g in gens) / n,
    }
    return metrics, gens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--m", default="8,20", help="comma list of latent steps for latent_mas")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    shapes.add_args(ap)
    args = ap.parse_args()
    lm = shapes.load(args)
    questions, fmt = gsm8k_questions(args.questions)
    print(f"{lm.name}, {args.dtype}, {args.device}, {torch.get_num_threads()} CPU threads, "
          f"{len(questions)} GSM8K questions, greedy, batch {args.batch_size}, "
          f"max_new_tokens {args.max_new_tokens}")  # fmt: skip
    rows = {}
    ms = [int(m) for m in args.m.split(",")]
    for method, m in [("single", 0), ("text_mas", 0)] + [("latent_mas", m) for m in ms]:
        name = f"{method} m={m}" if method == "latent_mas" else method
        rows[name], _ = run(lm, method, questions, fmt, m, args.max_new_tokens, args.batch_size)
        print(f"  {name:15s} " + "  ".join(f"{k} {v:8.2f}" for k, v in rows[name].items()), flush=True)
    t = rows["text_mas"]
    for m in ms:
        lat = rows[f"latent_mas m={m}"]
        print(f"latent_mas m={m} vs text_mas: {t['s/q'] / lat['s/q']:.2f}x faster, "
              f"{100 * (1 - lat['tokens/q'] / t['tokens/q']):.1f}% fewer output tokens, "
              f"{t['forwards/q'] / lat['forwards/q']:.2f}x fewer forwards")  # fmt: skip


if __name__ == "__main__":
    main()
