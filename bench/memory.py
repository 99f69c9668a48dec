"""Peak memory vs the model + KV estimate, one fresh process per configuration.

    .venv/bin/python -m bench.memory [--questions 8] [--max-new-tokens 128] [--configs latent_mas:1:8,...]
        [--dtype float32|bfloat16] [--device cuda] [--shape qwen3-4b]

Each configuration (method:batch:m[:topology]) runs in its own child process so its peak is its own: peak RSS (CPU)
or peak allocated GPU memory, against

    estimate = weights + KV,  KV = batch x longest KV length in the batch x bytes per position (all layers, K and V)

and the peak over the process's RSS once the model is loaded, has run one token and has its alignment map
(`growth`, what the method itself costs). The KV buffer is allocated for the prompts plus the whole decode budget
(latentrl.latent.memory.GrowingLayer), so rows that stop early leave part of it unused.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from bench import shapes

DEFAULT_CONFIGS = "single:1:0,latent_mas:1:8,latent_mas:8:8,latent_mas:8:32,latent_mas:8:8:hierarchical,text_mas:8:0"


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(args: argparse.Namespace, method: str, batch: int, m: int, topology: str) -> dict:
    from bench.method_costs import gsm8k_questions, run
    from latentrl.evaluation.rundir import kv_bytes_per_token
    from latentrl.latent import get_alignment

    lm = shapes.load(args)
    weights = sum(p.numel() * p.element_size() for p in lm.model.parameters()) / 2**20
    with torch.no_grad():  # touch every weight: memory-mapped checkpoints are paged in lazily
        lm.model(torch.ones(1, 1, dtype=torch.long, device=lm.device))
    get_alignment(lm.model, "ridge")  # model setup, once per process (its transients are not the method's)
    loaded = rss_peak_mb()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    questions, fmt = gsm8k_questions(args.questions)
    _, gens = run(lm, method, questions, fmt, m, args.max_new_tokens, batch, topology)
    per_token = kv_bytes_per_token(lm.model)
    chunks = [gens[s : s + batch] for s in range(0, len(gens), batch)]
    kv = max(len(c) * max(g.kv_length for g in c) for c in chunks) * per_token / 2**20
    out = {"weights_mb": weights, "kv_mb": kv, "loaded_rss_mb": loaded, "peak_rss_mb": rss_peak_mb()}
    if args.device == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help="comma list of method:batch:m[:topology]")
    shapes.add_args(ap)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        method, batch, m, *topology = args.child.split(":")
        topology = topology[0] if topology else "sequential"
        res = child(args, method, int(batch), int(m), topology)
        print(json.dumps(res))
        return
    print(f"{args.shape or 'embedded model'}, {args.dtype}, {args.device}, {args.questions} GSM8K questions, "
          f"{args.max_new_tokens} new tokens")  # fmt: skip
    width = max(len(c) for c in args.configs.split(","))
    head = "config".ljust(width + 2) + "weights MB  KV MB  est MB | loaded RSS  peak RSS  growth  growth/KV"
    print(head + ("  peak GPU  GPU/est" if args.device == "cuda" else ""))
    for conf in args.configs.split(","):
        cmd = [sys.executable, "-m", "bench.memory", "--child", conf, "--questions", str(args.questions)]
        cmd += ["--max-new-tokens", str(args.max_new_tokens), "--device", args.device, "--dtype", args.dtype]
        cmd += ["--shape", args.shape] if args.shape else []
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        est = r["weights_mb"] + r["kv_mb"]
        growth = r["peak_rss_mb"] - r["loaded_rss_mb"]
        line = (
            f"{conf:{width}s}  {r['weights_mb']:9.0f}  {r['kv_mb']:5.1f}  {est:6.0f} | {r['loaded_rss_mb']:10.0f}"
            f"  {r['peak_rss_mb']:8.0f}  {growth:6.0f}  {growth / max(r['kv_mb'], 1e-9):9.2f}"
        )
        if "peak_gpu_mb" in r:
            line += f"  {r['peak_gpu_mb']:8.0f}  {r['peak_gpu_mb'] / est:7.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
