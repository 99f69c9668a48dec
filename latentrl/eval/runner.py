"""The evaluation runner: one output directory per run, predictions appended as they are produced.

    DIR/config.json        what was run (a changed config refuses to mix into an old directory)
    DIR/predictions.jsonl  one line per question, flushed and fsynced after every batch
    DIR/summary.json       accuracy (strict and flexible), tokens, forwards, wall-clock, peak memory

Rerunning the same command skips finished questions, so a killed run loses at most one batch.
Questions run longest first (batches of similar length pad less); predictions carry their ids.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from latentrl.latent.align import MODES
from latentrl.mas import MethodConfig, Runtime, Sampling, get_method
from latentrl.models import DEFAULT_MODEL, eos_token_ids, load_model
from latentrl.tasks import Example, get_task
from latentrl.tasks.sources import SOURCES


class ConfigError(ValueError):
    """Invalid or conflicting run configuration."""


@dataclass
class EvalConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "hub id, local path or embedded:<name>"})
    task: str = field(default="gsm8k", metadata={"help": "benchmark name"})
    method: str = field(default="latent_mas", metadata={"help": "single | text_mas | latent_mas"})
    topology: str = field(default="sequential", metadata={"help": "sequential | hierarchical"})
    latent_steps: int = field(default=8, metadata={"help": "m, latent steps per non-final agent"})
    align: str = field(default="ridge", metadata={"help": "alignment map: raw | norm | ridge"})
    align_lambda: float = field(default=1e-5, metadata={"help": "ridge regularizer"})
    limit: int | None = field(default=None, metadata={"help": "first N questions only"})
    batch_size: int = field(default=8, metadata={"help": "questions per batch"})
    max_new_tokens: int = field(default=256, metadata={"help": "per agent that writes text"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})
    data_source: str = field(default="auto", metadata={"help": "auto | hub | offline | file"})
    data_file: str | None = field(default=None, metadata={"help": "local data file, overrides the source"})
    device: str | None = field(default=None, metadata={"help": "cuda / cpu (default: cuda if available)"})
    dtype: str = field(default="auto", metadata={"help": "auto | float32 | bfloat16 | float16"})
    output: str = field(default="runs/eval", metadata={"help": "output directory"})

    # Fields that do not change any prediction: a rerun may change them freely.
    FREE = ("limit", "output", "device")

    def validate(self) -> None:
        """Everything checkable before a model or a dataset is loaded."""
        get_task(self.task)
        get_method(self.method)
        if self.align not in MODES:
            raise ConfigError(f"unknown alignment '{self.align}'; choose one of {MODES}")
        if self.data_source not in SOURCES:
            raise ConfigError(f"unknown data source '{self.data_source}'; choose one of {SOURCES}")
        for name, low in (("batch_size", 1), ("max_new_tokens", 1), ("limit", 1)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
        self.method_config()

    def method_config(self) -> MethodConfig:
        try:
            sampling = Sampling(self.max_new_tokens, self.temperature, self.top_p, self.seed)
            return MethodConfig(self.topology, self.latent_steps, self.align, self.align_lambda, sampling=sampling)
        except ValueError as err:
            raise ConfigError(str(err)) from err

    def fingerprint(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.FREE}


def _check_dir(cfg: EvalConfig, out: Path) -> None:
    path = out / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in cfg.fingerprint().items() if old.get(k) != v}
        if diff:
            changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(f"{out} holds a run with another config ({changes}); use a new --output directory")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(cfg), indent=2))


def read_predictions(path: Path) -> list[dict]:
    """Finished predictions; a torn last line (killed mid-write) is dropped from the file."""
    if not path.exists():
        return []
    rows, good = [], 0
    raw = path.read_bytes()
    for line in raw.splitlines(keepends=True):
        try:
            rows.append(json.loads(line))
            good += len(line)
        except json.JSONDecodeError:
            break
    if good != len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(good)
    return rows


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(cfg: EvalConfig, rows: list[dict]) -> dict:
    n = len(rows)
    mean = lambda key: sum(r[key] for r in rows) / n if n else 0.0  # noqa: E731
    correct = sum(r["correct"] for r in rows)
    agents: dict[str, float] = {}
    for r in rows:
        for role, k in r["tokens_per_agent"].items():
            agents[role] = agents.get(role, 0) + k / n
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "task": cfg.task,
        "method": cfg.method,
        "topology": cfg.topology,
        "latent_steps": cfg.latent_steps if cfg.method == "latent_mas" else 0,
        "model": cfg.model,
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "accuracy_ci95": wilson(correct, n),
        "accuracy_strict": mean("correct_strict"),
        "invalid_format_rate": sum(r["pred_strict"] is None for r in rows) / max(n, 1),
        "output_tokens": mean("output_tokens"),
        "tokens_per_agent": agents,
        "forwards": mean("forwards"),
        "latent_steps_per_question": mean("latent_steps"),
        "seconds_per_question": mean("seconds"),
        "wall_clock_s": sum(r["seconds"] for r in rows),
        "peak_rss_mb": round(peak, 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
    }


def run_eval(cfg: EvalConfig, progress: bool = True) -> dict:
    """Run (or resume) one evaluation; returns its summary."""
    cfg.validate()
    task = get_task(cfg.task)
    examples = task.load(cfg.data_source, cfg.data_file)[: cfg.limit]  # fails before the model loads
    out = Path(cfg.output)
    _check_dir(cfg, out)
    pred_path = out / "predictions.jsonl"
    wanted = {ex.id for ex in examples}
    done = {r["id"]: r for r in read_predictions(pred_path) if r["id"] in wanted}
    # Longest first, so batches hold similar lengths (less padding) and a memory error shows up at once.
    todo = sorted((ex for ex in examples if ex.id not in done), key=lambda ex: -len(ex.question))
    if todo:
        lm = load_model(cfg.model, cfg.device, cfg.dtype)
        rt = Runtime(lm.model, lm.tokenizer, eos_token_ids(lm.model, lm.tokenizer), cfg.method_config())
        method = get_method(cfg.method)
        bar = tqdm(
            total=len(examples), initial=len(done), desc=f"{cfg.method} m={cfg.latent_steps}", disable=not progress
        )
        with open(pred_path, "a", encoding="utf-8") as fh:
            for start in range(0, len(todo), cfg.batch_size):
                batch = todo[start : start + cfg.batch_size]
                gen = torch.Generator(lm.device).manual_seed(cfg.seed * 1_000_003 + start)
                t0 = time.perf_counter()
                generations = method(rt, [ex.question for ex in batch], task.answer_format, gen)
                seconds = (time.perf_counter() - t0) / len(batch)
                for ex, g in zip(batch, generations):
                    row = record(task.score(g.text, ex), ex, g, seconds)
                    done[ex.id] = row
                    fh.write(json.dumps(row) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                bar.update(len(batch))
        bar.close()
    summary = summarize(cfg, [done[ex.id] for ex in examples])
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def record(score, ex: Example, g, seconds: float) -> dict:
    return {
        "id": ex.id,
        "question": ex.question,
        "gold": ex.gold,
        "text": g.text,
        "pred": score.flexible,
        "pred_strict": score.strict,
        "correct": score.correct,
        "correct_strict": score.correct_strict,
        "output_tokens": g.output_tokens,
        "tokens_per_agent": {a.role: a.output_tokens for a in g.agents},
        "forwards": g.forwards,
        "latent_steps": g.latent_steps,
        "memory_length": g.memory_length,
        "seconds": seconds,
        "agents": [dataclasses.asdict(a) for a in g.agents],
    }
