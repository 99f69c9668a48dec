"""One-shot GPU check: the numbers a lent H100 should give, in one table, in one run (under 8 minutes).

A lent GPU reaches no hub and carries at most 64 MiB of files, so everything runs on random weights at a
real model's shape (`shapes.py`) with the embedded model's tokenizer, and reuses the benchmarks beside this
script (engine.py, methods.py, grpo.py). Rows:
- latent step / decode step time ratio (Qwen3-4B shape, bf16; one forward of one position each, same context);
- LatentMAS questions/s at batch 1, 8 and 32 (fixed output length: random weights never stop early);
- LatentMAS vs TextMAS time per question at the same output length;
- bf16 batch invariance: the share of questions whose greedy text at the largest batch equals batch 1's;
- one GRPO step (Qwen3-0.6B shape, LoRA, exploration off) under whatever accelerate launched it with (the
  wrapper gpu_check.sh launches DeepSpeed ZeRO-2): its wall-clock time and the rollout/trainer mismatch, the
  largest |sampling log-prob - trainer log-prob| over the completion tokens of one generation batch.

    bash bench/gpu_check.sh --tokenizer bundle/tokenizer   # on the GPU: ZeRO-2 via accelerate, Qwen3 shapes, bf16
    .venv/bin/python -m bench.gpu_check --cpu   # tiny shapes, float32, well under a minute (tests/test_gpu_check.py)
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config  # noqa: E402

from bench import (
    engine,  # noqa: E402
    shapes,  # noqa: E402
)
from bench.grpo import StepTimer  # noqa: E402
from bench.method_costs import run  # noqa: E402
from latentrl.models import LoadedModel  # noqa: E402
from latentrl.tasks import get_task  # noqa: E402

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, tie_word_embeddings=True)  # fmt: skip
MODES = {  # (step shape, GRPO shape, dtype, questions, batches, context, output tokens, m)
    "gpu": ("qwen3-4b", "qwen3-0.6b", "bfloat16", 32, (1, 8, 32), 512, 64, 8),
    "cpu": ("tiny", "tiny", "float32", 4, (1, 2, 4), 32, 4, 2),
}


def load(shape: str, dtype: str, device: str, tokenizer: str | None) -> LoadedModel:
    """A model at `shape` (a name in shapes.SHAPES, or 'tiny') with random weights. Its tokenizer is the embedded
    model's: loaded with that model (`shapes.load`), or from `tokenizer`, a directory of its saved files, where the
    embedded model's 90 MB package is not carried (a lent GPU; see docs/performance.md, "GPU check")."""
    if shape == "tiny":
        shapes.SHAPES.setdefault("tiny", TINY)
    if tokenizer is None:
        return shapes.load(argparse.Namespace(shape=shape, dtype=dtype, device=device))
    tok = AutoTokenizer.from_pretrained(tokenizer)
    config = Qwen3Config(vocab_size=len(tok), head_dim=128 if shape != "tiny" else 16, **shapes.SHAPES[shape])
    config.bos_token_id, config.eos_token_id, config.pad_token_id = tok.bos_token_id, tok.eos_token_id, None
    torch.manual_seed(0)  # as shapes.load: the same random weights
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    return LoadedModel(model.eval(), tok, f"{shape} (random weights)")


def word_problems(n: int) -> tuple[list[str], str]:
    """n GSM8K-sized word problems and GSM8K's answer format. Generated, not GSM8K's own: its offline copy is
    in an asset package a lent GPU does not carry, and random weights make the wording irrelevant anyway."""
    template = (
        "A farmer has {a} rows of apple trees with {b} trees in each row. Each tree gives {c} apples, and he "
        "sells them in bags of {d}. How many bags can he fill, and how many apples are left over?"
    )
    questions = [template.format(a=3 + i, b=7 + 2 * i, c=11 + i, d=5 + i % 4) for i in range(n)]
    return questions, get_task("gsm8k").answer_format


def grpo_step(lm, args, m: int, completion: int) -> tuple[float, float]:
    """(seconds of one optimizer step, max |sampling - trainer| log-prob) of latent GRPO on `lm`."""
    from datasets import Dataset
    from peft import LoraConfig

    from latentrl.rl.config import LatentGRPOConfig
    from latentrl.rl.trainer import LatentGRPOTrainer, RolloutState

    cpu = args.mode == "cpu"
    cfg = LatentGRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="gpu-check-"), task="gsm8k", latent_steps=m, grad_mode="none",
        per_device_train_batch_size=4, num_generations=4, max_completion_length=completion, temperature=1.0,
        beta=0.0, use_cpu=cpu, bf16=not cpu, report_to=[], logging_steps=1000, save_strategy="no", max_steps=1,
        seed=0, disable_tqdm=True,
    )  # fmt: skip
    questions, fmt = word_problems(4)
    trainer = LatentGRPOTrainer(
        model=lm.model, reward_funcs=[lambda prompts, completions, **_: [float(len(c)) for c in completions]],
        args=cfg, processing_class=lm.tokenizer, train_dataset=Dataset.from_list([{"prompt": q} for q in questions]),
        peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"), answer_format=fmt,
    )  # fmt: skip
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    batch = trainer._generate_and_score_completions([{"prompt": q} for q in questions for _ in range(4)])
    ids, prompt = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1), batch["prompt_ids"].shape[1]
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    with trainer.scoring(RolloutState.from_inputs(batch)), torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, ids.shape[1] - prompt)
    valid = batch["completion_mask"].bool()
    mismatch = (logps - batch["sampling_per_token_logps"])[valid].abs().max().item()
    return timer.times[0], mismatch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="tiny shapes, float32 on the CPU (the test's mode)")
    ap.add_argument("--tokenizer", help="directory of the embedded model's tokenizer files (default: load that model)")
    args = ap.parse_args()
    args.mode = "cpu" if args.cpu else "gpu"
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device; use --cpu for the tiny-shape check")
    step_shape, grpo_shape, dtype, n, batches, context, out_tokens, m = MODES[args.mode]
    device = "cpu" if args.cpu else "cuda"
    t0 = time.perf_counter()
    rows: list[tuple[str, float]] = []
    lm = load(step_shape, dtype, device, args.tokenizer)
    latent, decode = engine.step_times(lm.model, 1, context, 20)
    rows.append((f"latent step / decode step ({step_shape}, batch 1, context {context})", latent / decode))
    questions, fmt = word_problems(n)
    texts, seconds = {}, {}
    for b in batches:
        metrics, gens = run(lm, "latent_mas", questions, fmt, m, out_tokens, b)
        texts[b], seconds[b] = [g.text for g in gens], metrics["s/q"]
        rows.append((f"LatentMAS questions/s, batch {b} (m={m}, {out_tokens} output tokens)", 1 / metrics["s/q"]))
    big = batches[-1]
    text_mas, _ = run(lm, "text_mas", questions, fmt, m, out_tokens, big)
    rows.append((f"TextMAS / LatentMAS seconds per question (batch {big})", text_mas["s/q"] / seconds[big]))
    same = sum(a == b for a, b in zip(texts[batches[0]], texts[batches[-1]])) / len(questions)
    rows.append((f"{dtype} batch invariance: batch {batches[-1]} text == batch 1 text", same))
    del lm
    step, mismatch = grpo_step(load(grpo_shape, dtype, device, args.tokenizer), args, m, out_tokens)
    zero = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")  # set by `accelerate launch` with a DeepSpeed config
    engine_name = f"DeepSpeed ZeRO-{zero}" if zero else "no DeepSpeed"
    rows.append((f"GRPO step seconds ({grpo_shape}, LoRA, batch 4, {engine_name})", step))
    rows.append(("GRPO rollout/trainer max |log-prob difference|", mismatch))
    width = max(len(name) for name, _ in rows)
    device_name = torch.cuda.get_device_name() if not args.cpu else "CPU"
    print(f"gpu_check ({args.mode} mode, {device_name}, torch {torch.__version__}, {time.perf_counter() - t0:.0f} s)")
    for name, value in rows:
        print(f"| {name:<{width}} | {value:12.4g} |")
    if not all(math.isfinite(v) for _, v in rows):
        raise SystemExit("gpu_check: a row is not finite")


if __name__ == "__main__":
    main()
