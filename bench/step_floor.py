"""What could a static cache + torch.compile (or CUDA graphs) still remove from the one-position step?

    .venv/bin/python -m bench.step_floor [--context 256] [--repeats 30] [--batches 1,8] [--compile]
        [--dtype float32] [--device cuda] [--shape qwen3-4b]

Compilation and graphs remove Python, dispatch and small-kernel overhead; they cannot make the step read
the weights faster. So this times, alternating, medians:
  step     latentrl's latent step (one input embedding through the decoder on a KV cache of `--context`)
  weights  the same step's weight matmuls alone: every 2-D weight of the decoder applied once to a (B, 1, d)
           input (F.linear, no attention, norms or cache): a floor that compile cannot beat
and prints step - weights: the most any compiler could save per step on this machine.
With `--compile`, a third side runs the same step with the decoder's forward under torch.compile(dynamic=True)
(on latentrl's own cache; the compile time is printed apart).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bench import shapes
from bench.engine import crop
from latentrl.latent import Memory, get_alignment


def bench(model, batch: int, context: int, repeats: int, compile_step: bool) -> None:
    align = get_alignment(model, "ridge")
    memory = Memory.empty(model, batch, context + 8)
    dev = model.device
    ids = torch.randint(100, 1000, (batch, context), device=dev)
    h = memory.forward_ids(ids, torch.ones_like(ids))[:, -1]
    one = torch.ones(batch, 1, dtype=torch.long, device=dev)
    weights = [p for n, p in model.get_decoder().named_parameters() if p.dim() == 2 and "embed" not in n]
    inputs = {w.shape[1]: torch.randn(batch, 1, w.shape[1], dtype=w.dtype, device=dev) for w in weights}

    decoder = model.get_decoder()
    eager = decoder.forward

    def step(forward=eager):
        decoder.forward = forward  # the instance attribute shadows the class's forward
        memory.forward(align(h)[:, None], one)
        crop(memory, context)

    def matmuls():
        for w in weights:
            F.linear(inputs[w.shape[1]], w)

    ways = {"step": step, "weights": matmuls}
    if compile_step:
        compiled = torch.compile(eager, dynamic=True)
        t0 = time.perf_counter()
        for _ in range(3):
            step(compiled)
        print(f"  batch {batch}: torch.compile warm-up {time.perf_counter() - t0:.1f} s")
        ways["compiled"] = lambda: step(compiled)
    times = {k: [] for k in ways}
    for i in range(repeats + 3):
        for k in ways if i % 2 else reversed(ways):
            t0 = time.perf_counter()
            ways[k]()
            shapes.sync(dev)
            if i >= 3:
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    mb = sum(w.numel() * w.element_size() for w in weights) / 2**20
    print(f"  batch {batch}: step {med['step']:.2f} ms, weight matmuls alone {med['weights']:.2f} ms "
          f"({mb:.0f} MB of weights, {mb / 1024 / med['weights'] * 1e3:.1f} GiB/s); "
          f"everything else {med['step'] - med['weights']:.2f} ms = "
          f"{100 * (1 - med['weights'] / med['step']):.0f}% of the step")  # fmt: skip
    if "compiled" in med:
        print(f"  batch {batch}: compiled step {med['compiled']:.2f} ms = {med['compiled'] / med['step']:.2f}x eager")
    decoder.forward = eager


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--compile", action="store_true", help="also time the step under torch.compile")
    shapes.add_args(ap)
    args = ap.parse_args()
    lm = shapes.load(args)
    print(f"{lm.name}, {args.dtype}, {args.device}, {torch.get_num_threads()} CPU threads, context {args.context}")
    with torch.no_grad():
        for b in args.batches.split(","):
            bench(lm.model, int(b), args.context, args.repeats, args.compile)


if __name__ == "__main__":
    main()
