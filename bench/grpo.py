"""GRPO step time: latent GRPO (LatentMAS rollout, m latent steps, grad_mode none) vs stock TRL GRPO.

    .venv/bin/python -m bench.grpo [--m 8] [--completion 32] [--batch 4] [--generations 4] [--rounds 3]
    .venv/bin/python -m bench.grpo --generations 8 --batch 8 --sides latent,unshared   # shared worker rollouts
    .venv/bin/python -m bench.grpo --loss-only --sides latent,unshared   # shared prompt in the loss forward

The trainers run in this one process on the embedded model with the same LoRA, batch, group size, reward
and the same total tokens per sample: stock TRL gets a plain-text prompt as long as the latent trajectory's
prompt row (all agents' prompt tokens plus the latent columns), and both generate exactly `--completion`
tokens (EOS disabled), so the sides differ only by the latent pipeline. `recompute` is latent GRPO with
reuse_rollout_latents=false (the loss forward reruns the latent recurrence); `unshared` is latent GRPO with
share_worker_rollouts=false (each generation runs its own workers, and the loss forward runs each row's
whole prompt). `--loss-only` times the loss forward and backward alone, every side on one same rollout.
The sides alternate (`--steps` optimizer steps each per round) and the ratio of median step times is
printed; the first step of each round is dropped as warm-up. Rollout time (the rollout_func alone) is
reported beside step time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from latentrl.mas.prompts import latent_prompts  # noqa: E402
from latentrl.models import load_model  # noqa: E402
from latentrl.rl.config import LatentGRPOConfig  # noqa: E402
from latentrl.rl.rewards import correctness_reward  # noqa: E402
from latentrl.rl.trainer import LatentGRPOTrainer, RolloutState  # noqa: E402
from latentrl.tasks import get_task  # noqa: E402


class StepTimer(TrainerCallback):
    """Wall-clock seconds of each optimizer step (generation, scoring, forward and backward)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--topology", default="sequential")
    ap.add_argument("--completion", type=int, default=32, help="tokens generated per sample (EOS disabled)")
    ap.add_argument("--batch", type=int, default=4, help="per_device_train_batch_size (samples per step)")
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per side per round")
    ap.add_argument("--rollouts-only", action="store_true", help="time the latent rollout_func alone, no training")
    ap.add_argument("--loss-only", action="store_true", help="time the loss forward + backward alone")
    ap.add_argument(
        "--sides", default="latent,recompute,stock",
        help="latent: grad_mode none reusing the rollout latents; recompute: reuse_rollout_latents=false; "
        "unshared: share_worker_rollouts=false; stock: TRL",
    )  # fmt: skip
    args = ap.parse_args()

    lm = load_model(device="cpu", dtype="float32")
    tok = lm.tokenizer
    task = get_task("gsm8k")
    examples = task.load("offline", None)[:64]
    workers, finals = latent_prompts(tok, args.topology, [e.question for e in examples], task.answer_format)
    rows = [sum((w[q] for w in workers), []) + finals[q] for q in range(len(examples))]
    latent_len = [len(r) + args.m * len(workers) for r in rows]
    # Stock prompts: the same agents' text, padded with filler words to the latent row's length.
    stock = []
    for r, n in zip(rows, latent_len):
        text = tok.decode(r)
        while len(tok(text, add_special_tokens=False).input_ids) < n:
            text = " so" + text
        stock.append(text)
    stock_len = [len(tok(t, add_special_tokens=False).input_ids) for t in stock]
    print(f"{lm.name}, float32, {torch.get_num_threads()} threads; m={args.m}, {args.topology}, "
          f"batch {args.batch}, {args.generations} generations, {args.completion} completion tokens")  # fmt: skip
    print(f"prompt tokens per sample: latent row {statistics.mean(latent_len):.0f}, "
          f"stock {statistics.mean(stock_len):.0f}")  # fmt: skip

    gold = [e.gold for e in examples]
    common = dict(
        per_device_train_batch_size=args.batch, num_generations=args.generations,
        max_completion_length=args.completion, temperature=1.0, learning_rate=1e-5, beta=0.0, use_cpu=True,
        bf16=False, report_to=[], logging_steps=1000, save_strategy="no", max_steps=args.steps, seed=0,
        disable_tqdm=True,
    )  # fmt: skip
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=targets, task_type="CAUSAL_LM")
    reward = correctness_reward(task)
    out = tempfile.mkdtemp(prefix="bench-grpo-")
    latent_rows = Dataset.from_list([{"prompt": e.question, "gold": g} for e, g in zip(examples, gold)])
    trainers, rollout_times = {}, {}
    for side in args.sides.split(","):
        model = load_model(device="cpu", dtype="float32").model  # one per side: LoRA is injected in place
        if side == "stock":
            cfg = GRPOConfig(output_dir=out, generation_kwargs={"min_new_tokens": args.completion}, **common)
            data = Dataset.from_list([{"prompt": t, "gold": g} for t, g in zip(stock, gold)])
            trainers[side] = GRPOTrainer(
                model=model, reward_funcs=[reward], args=cfg, processing_class=tok, peft_config=lora, train_dataset=data
            )
            continue
        cfg = LatentGRPOConfig(
            output_dir=out, task="gsm8k", latent_steps=args.m, topology=args.topology, grad_mode="none",
            reuse_rollout_latents=side != "recompute", share_worker_rollouts=side != "unshared", **common,
        )  # fmt: skip
        trainers[side] = LatentGRPOTrainer(
            model=model, reward_funcs=[reward], args=cfg, processing_class=tok, peft_config=lora,
            train_dataset=latent_rows, answer_format=task.answer_format,
        )  # fmt: skip
        trainers[side].stop_ids = []  # fixed completion length, as min_new_tokens does for stock TRL
        trainers[side].rollout_func = timed(trainers[side].rollout_func, rollout_times.setdefault(side, []))
    if args.rollouts_only or args.loss_only:
        (time_losses if args.loss_only else time_rollouts)(trainers, [e.question for e in examples], args)
        return
    timers = {side: StepTimer() for side in trainers}
    for side, trainer in trainers.items():
        trainer.add_callback(timers[side])
    kept = {side: [] for side in trainers}
    kept_rollout = {side: [] for side in rollout_times}
    for r in range(args.rounds):
        for side in list(trainers) if r % 2 == 0 else list(reversed(trainers)):
            timers[side].times.clear()
            rollout_times.get(side, []).clear()
            trainers[side].train()
            kept[side] += timers[side].times[1:]  # first step of a round: warm-up
            if side in rollout_times:
                kept_rollout[side] += rollout_times[side][1:]
            print(f"  round {r} {side:9s}: " + " ".join(f"{t:.2f}" for t in timers[side].times) + " s/step")
    med = {side: statistics.median(times) for side, times in kept.items()}
    med_rollout = {side: statistics.median(times) for side, times in kept_rollout.items()}
    print("median step: " + ", ".join(f"{side} {t:.2f} s" for side, t in med.items()))
    print("median rollout: " + ", ".join(f"{side} {t:.2f} s" for side, t in med_rollout.items()))
    for side in med:
        if side != "stock" and "stock" in med:
            print(f"{side} / stock TRL = {med[side] / med['stock']:.2f}x")
    if "latent" in med and "unshared" in med:
        print(f"unshared / shared: step {med['unshared'] / med['latent']:.2f}x, "
              f"rollout {med_rollout['unshared'] / med_rollout['latent']:.2f}x")  # fmt: skip


def time_rollouts(trainers: dict, questions: list[str], args) -> None:
    """Median seconds of one generation batch's rollout per side (each question `--generations` times, as TRL's
    sampler sends them), sides alternating, `--steps` rollouts per side per round, the first of each dropped."""
    per_batch = args.batch // args.generations
    kept = {side: [] for side in trainers}
    for r in range(args.rounds):
        for side in list(trainers) if r % 2 == 0 else list(reversed(trainers)):
            times = []
            for k in range(args.steps):
                start = ((r * args.steps + k) * per_batch) % len(questions)
                prompts = [q for q in questions[start : start + per_batch] for _ in range(args.generations)]
                t0 = time.perf_counter()
                trainers[side].rollout_func(prompts, trainers[side])
                times.append(time.perf_counter() - t0)
            kept[side] += times[1:]
            print(f"  round {r} {side:9s}: " + " ".join(f"{t:.2f}" for t in times) + " s/rollout")
    med = {side: statistics.median(t) for side, t in kept.items()}
    print("median rollout: " + ", ".join(f"{side} {t:.2f} s" for side, t in med.items()))
    if "latent" in med and "unshared" in med:
        print(f"unshared / shared rollout = {med['unshared'] / med['latent']:.2f}x")


def time_losses(trainers: dict, questions: list[str], args) -> None:
    """Median seconds of the log-prob forward and backward of one batch (its prompts `--generations` times),
    every side on the same rollout, sides alternating, `--steps` per side per round, the first dropped."""
    prompts = [q for q in questions[: args.batch // args.generations] for _ in range(args.generations)]
    first = next(iter(trainers.values()))
    torch.manual_seed(0)
    out = first.rollout_func(prompts, first)
    P, C = max(map(len, out["prompt_ids"])), max(map(len, out["completion_ids"]))
    pad = [(P - len(r), C - len(c)) for r, c in zip(out["prompt_ids"], out["completion_ids"])]
    ids = torch.tensor(
        [[0] * a + r + c + [0] * b for (a, b), r, c in zip(pad, out["prompt_ids"], out["completion_ids"])]
    )
    mask = torch.tensor([[0] * a + [1] * (P - a + C - b) + [0] * b for a, b in pad])
    kept = {side: [] for side in trainers}
    for r in range(args.rounds):
        for side in list(trainers) if r % 2 == 0 else list(reversed(trainers)):
            trainer, times = trainers[side], []
            trainer.model.train()
            for _ in range(args.steps):
                t0 = time.perf_counter()
                with trainer.scoring(out[RolloutState.KEY]):
                    logps = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, C)[0]
                logps.sum().backward()
                times.append(time.perf_counter() - t0)
                trainer.model.zero_grad()
            kept[side] += times[1:]
            print(f"  round {r} {side:9s}: " + " ".join(f"{t:.2f}" for t in times) + " s/loss")
    med = {side: statistics.median(t) for side, t in kept.items()}
    print(f"prompt row {P} columns, completions {C}; median loss forward+backward: "
          + ", ".join(f"{side} {t:.2f} s" for side, t in med.items()))  # fmt: skip
    if "latent" in med and "unshared" in med:
        print(f"unshared / shared loss = {med['unshared'] / med['latent']:.2f}x")


def timed(func, times: list[float]):
    """`func` that appends its wall-clock seconds to `times` on every call."""

    def run(*args, **kwargs):
        t0 = time.perf_counter()
        out = func(*args, **kwargs)
        times.append(time.perf_counter() - t0)
        return out

    return run


if __name__ == "__main__":
    main()
