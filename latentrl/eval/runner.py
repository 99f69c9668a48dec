"""The evaluation runner: one output directory per run, predictions appended as they are produced.

    DIR/config.json        what was run and on which data (source, size, sha256); a changed config or
                           changed data refuses to mix into a directory that holds predictions
    DIR/predictions.jsonl  one line per question, fsynced after every batch
    DIR/summary.json       accuracy (strict and flexible), tokens, forwards, wall-clock, this point's peak
                           memory, the data record

Rerunning the same command skips finished questions, so a killed run loses at most one batch. Sampling
draws from a generator per question, seeded by the run seed and the question id, so a resumed run
samples what an uninterrupted one would. Questions run longest first (batches of similar length pad
less); predictions carry their ids. A process keeps the last model it loaded, so the points of a grid
share one load. Under `accelerate launch` / `torchrun` each rank takes every WORLD_SIZE-th question and
rank 0 merges.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from latentrl.eval import store
from latentrl.eval.resources import PeakMemory
from latentrl.eval.stats import summarize
from latentrl.latent.controls import donors, row_seed
from latentrl.mas import Generation, MethodConfig, Runtime, Sampling, get_method
from latentrl.mas.pipeline import MemoryInputs
from latentrl.mas.spec import LatentSpec, spec_fields
from latentrl.mas.vllm_decode import VLLMUnavailable
from latentrl.models import DEFAULT_MODEL, LoadedModel, eos_token_ids, load_model
from latentrl.tasks import Example, Score, Task, get_task
from latentrl.tasks.registry import score_many
from latentrl.tasks.sources import SOURCES, Data, load_examples


class ConfigError(ValueError):
    """Invalid or conflicting run configuration."""


@dataclass
class EvalConfig(LatentSpec):
    """One evaluation point: the latent settings (`LatentSpec`) plus the model, data, decoding and output."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "hub id, local path or embedded:<name>"})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter dir (from recipes/grpo.py) to merge"})
    task: str = field(default="gsm8k", metadata={"help": "benchmark name"})
    method: str = field(default="latent_mas", metadata={"help": "single | text_mas | latent_mas"})
    limit: int | None = field(default=None, metadata={"help": "first N questions only"})
    batch_size: int = field(default=8, metadata={"help": "questions per batch"})
    max_new_tokens: int = field(default=256, metadata={"help": "per agent that writes text"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    seed: int = field(default=0, metadata={"help": "sampling seed (and the shuffled control's donors)"})
    data_source: str = field(default="auto", metadata={"help": "auto | hub | offline | file"})
    data_file: str | None = field(default=None, metadata={"help": "local data file, overrides the source"})
    device: str | None = field(default=None, metadata={"help": "cuda / cpu (default: cuda if available)"})
    dtype: str = field(default="auto", metadata={"help": "auto | float32 | bfloat16 | float16"})
    backend: str = field(
        default="hf", metadata={"help": "final agent's decode: hf | vllm (latent_mas, sequential; GPU profile)"}
    )
    output: str = field(default="runs/eval", metadata={"help": "output directory"})
    allow_code_execution: bool = field(
        default=False, metadata={"help": "run generated code (sandboxed) to score code tasks"}
    )
    wandb: bool = field(default=False, metadata={"help": "log to W&B (offline unless logged in)"})
    wandb_project: str = field(default="latentrl", metadata={"help": "W&B project"})
    wandb_group: str | None = field(default=None, metadata={"help": "W&B group (a sweep)"})

    # Fields that do not change any prediction: a rerun may change them freely.
    FREE = ("limit", "output", "device", "allow_code_execution", "wandb", "wandb_project", "wandb_group")

    def __post_init__(self) -> None:
        if problems := self.latent_problems():
            raise ConfigError("; ".join(problems))

    def validate(self) -> Task:
        """Everything checkable before a model or a dataset is loaded; returns the task."""
        task = get_task(self.task)
        get_method(self.method)
        if self.memory_control != "none" and self.method != "latent_mas":
            raise ConfigError(f"--memory-control {self.memory_control} applies to latent_mas only, not '{self.method}'")
        if self.data_source not in SOURCES:
            raise ConfigError(f"unknown data source '{self.data_source}'; choose one of {SOURCES}")
        for name, low in (("batch_size", 1), ("max_new_tokens", 1), ("limit", 1)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
        if task.executes_code and not self.allow_code_execution:
            raise ConfigError(
                f"task '{self.task}' scores answers by running generated code; pass --allow-code-execution "
                "to run it in the sandbox (separate process, resource limits, no network)"
            )
        if self.backend != "hf" and self.method != "latent_mas":
            raise ConfigError(f"--backend {self.backend} applies to latent_mas only, not '{self.method}'")
        if self.backend == "vllm" and self.adapter:
            raise ConfigError("--backend vllm loads weights from the model path: merge the adapter and pass its dir")
        check_device(self.device)
        check_output(Path(self.output))
        self.method_config()
        return task

    def method_config(self) -> MethodConfig:
        """The method's config of this point, built once (by keyword: the latent fields are shared)."""
        if "_method_config" not in self.__dict__:
            try:
                sampling = Sampling(self.max_new_tokens, self.temperature, self.top_p, self.seed)
                self.__dict__["_method_config"] = MethodConfig(
                    **spec_fields(self), sampling=sampling, backend=self.backend
                )
            except (ValueError, VLLMUnavailable) as err:
                raise ConfigError(str(err)) from err
        return self.__dict__["_method_config"]

    def fingerprint(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.FREE}


def check_device(device: str | None) -> None:
    """Refuse a device this machine does not have, before anything loads."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"--device {device!r} is not a device (use cpu, cuda or cuda:N)") from err
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {device}: no CUDA GPU is visible here; use --device cpu or omit --device")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"--device {device}: only {count} CUDA device(s) here (cuda:0..cuda:{count - 1})")


def check_output(out: Path) -> None:
    """Refuse an --output that is a file, or under a file, or in a directory this process cannot write."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out} is a file, not a directory")
    parent = next(p for p in (out, *out.parents) if p.exists())  # the nearest part that exists
    if not parent.is_dir():
        raise ConfigError(f"--output {out}: {parent} is a file, so the directory cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--output {out}: {parent} is not writable")


def _check_dir(cfg: EvalConfig, data: Data, out: Path, rank: int) -> None:
    """Refuse a directory holding predictions of another config or other data; else (re)write config.json.

    A directory without predictions takes the new config, so a run that failed before its first batch
    (a typo in --model, a missing GPU) does not lock its directory."""
    path = out / "config.json"
    prompts = cfg.method_config().prompt_set
    if path.exists() and store.read_all(out):
        old = json.loads(path.read_text())
        default = EvalConfig().fingerprint()  # a key an older run did not record had its default value
        diff = {k: (old.get(k, default[k]), v) for k, v in cfg.fingerprint().items() if old.get(k, default[k]) != v}
        if diff:
            changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(f"{out} holds a run with another config ({changes}); use a new --output directory")
        if change := data_change(old, data):
            raise ConfigError(f"{out} holds predictions on other data ({change}); use a new --output directory")
        was = old.get("prompt_sha256", prompts.sha256)  # older runs recorded no prompt hash
        if was != prompts.sha256:
            raise ConfigError(
                f"{out} holds predictions made with other prompts: prompt set {prompts.name} changed since "
                f"(sha256 {was[:12]} -> {prompts.sha256[:12]}); use a new --output directory"
            )
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"config.json.{rank}.tmp"
    tmp.write_text(json.dumps({**asdict(cfg), "data": asdict(data), "prompt_sha256": prompts.sha256}, indent=2))
    os.replace(tmp, path)


def data_change(recorded: dict, data: Data) -> str:
    """What changed between the data a run recorded (its config.json or summary.json) and `data`; '' if none."""
    was = recorded.get("data", {}).get("sha256", data.sha256)  # older runs recorded no data hash
    if was == data.sha256:
        return ""
    return f"sha256 {was[:12]} -> {data.sha256[:12]}, now from {data.source} {data.file or ''}".rstrip()


def read_summary(out: Path) -> dict | None:
    """The run's summary.json; None where there is none or it is not a summary (a hand edit, a full disk).

    A summary is derived from the rows, so a broken one is rebuilt by rerunning the run, never trusted."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = isinstance(summary, dict) and {"n", "accuracy", "accuracy_strict"} <= set(summary)
    return summary if ok and isinstance(summary["n"], int) else None


def load_task(cfg: EvalConfig) -> tuple[Task, list[Example], Data]:
    """The validated task, all its examples (before --limit) and the data's record. Fails before a model loads;
    code execution is enabled only for a task that runs code, which `validate` allows only on the opt-in."""
    task = cfg.validate()
    examples, data = load_examples(task, cfg.data_source, cfg.data_file)
    if task.executes_code:
        from latentrl.tasks.sandbox import enable_code_execution

        enable_code_execution()
    return task, examples, data


@dataclass
class World:
    rank: int = 0
    size: int = 1
    barrier: Callable[[], None] = lambda: None
    device: str | None = None


def world() -> World:
    """This process's place under `accelerate launch` / `torchrun` (one process: rank 0 of 1).

    Reads RANK / WORLD_SIZE / LOCAL_RANK as both launchers set them; the barrier is a torch.distributed
    one (gloo on CPU, nccl on GPU), initialized here if the launcher did not.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), dist.barrier, f"cuda:{local}" if cuda else "cpu")


def trained_latent_steps(adapter: str | None) -> int | None:
    """The m an adapter was trained with, from the recipe saved beside it (None: not known)."""
    recipe = Path(adapter) / "latentrl_recipe.json" if adapter else None
    return json.loads(recipe.read_text()).get("latent_steps") if recipe and recipe.exists() else None


def kv_bytes_per_token(model) -> int:
    """Bytes of K and V one position costs over all layers (GQA-aware)."""
    c = model.config
    heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return 2 * c.num_hidden_layers * heads * head_dim * next(model.parameters()).element_size()


def record(score: Score, ex: Example, g: Generation, seconds: float, kv_entry_bytes: int = 0) -> dict:
    return {
        "id": ex.id,
        "question": ex.question,
        "gold": ex.gold,
        "options": ex.meta.get("options"),
        "text": g.text,
        "pred": score.flexible,
        "pred_strict": score.strict,
        "correct": score.correct,
        "correct_strict": score.correct_strict,
        "output_tokens": g.output_tokens,
        "tokens_per_agent": {a.role: a.output_tokens for a in g.agents},
        "forwards": g.forwards,
        "latent_steps_total": g.latent_steps_total,
        "memory_length": g.memory_length,
        "kv_length": g.kv_length,
        "kv_bytes": g.kv_length * kv_entry_bytes,
        "latent_norm": g.latent_norm,
        "latent_cos": g.latent_cos,
        "think_truncated": g.think_truncated,
        "seconds": seconds,
        "agents": [dataclasses.asdict(a) for a in g.agents],
    }


_LOADED: dict[tuple, LoadedModel] = {}


def cached_model(name: str, device: str | None, dtype: str, adapter: str | None) -> LoadedModel:
    """The model of the previous point when it is the same (name, adapter, dtype, device); else a fresh load.

    One model is kept: a grid runs its points model by model, so each loads once per process."""
    key = (name, adapter, dtype, device)
    if key not in _LOADED:
        _LOADED.clear()  # free the previous model before loading the next
        _LOADED[key] = load_model(name, device, dtype, adapter)
    return _LOADED[key]


def question_seed(seed: int, qid: str) -> int:
    """The sampling seed of one question: from the run seed and the question id only, so a resumed run (other
    batches, other order) samples each question as an uninterrupted run does."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{qid}".encode()).digest()[:8], "big") >> 1


class BatchProgress:
    """Shows a batch's progress on the bar: the agent at work, tokens generated, rows still running."""

    def __init__(self, bar: tqdm, every_s: float = 0.5) -> None:
        self.bar, self.every_s, self.last = bar, every_s, 0.0

    def __call__(self, agent: str, tokens: int, running: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:  # redraw at most twice a second
            self.last = now
            self.bar.set_postfix_str(f"{agent}: {tokens} tokens, {running} rows running")


def memory_sources(cfg: EvalConfig, examples: list[Example]) -> dict[str, Example]:
    """{question id: the example whose question its workers read}: the donor under `shuffled` (a derangement of
    the whole data set, fixed by the seed and the ids), the question itself otherwise."""
    if cfg.memory_control != "shuffled":
        return {ex.id: ex for ex in examples}
    by_id = {ex.id: ex for ex in examples}
    return {q: by_id[d] for q, d in donors(list(by_id), cfg.seed).items()}


def _generate(
    cfg: EvalConfig, task: Task, todo: list[Example], sources: dict[str, Example], path: Path, w: World, progress: bool
) -> None:
    """Run the method on `todo` in batches, score, and append each batch to `path`."""
    lm = cached_model(cfg.model, cfg.device or w.device, cfg.dtype, cfg.adapter)
    rt = Runtime(lm.model, lm.tokenizer, eos_token_ids(lm.model, lm.tokenizer), cfg.method_config())
    answer_format = rt.config.prompt_set.answer_format(task.family, task.answer_format)
    method = get_method(cfg.method)
    desc = f"{cfg.task} {cfg.method} m={cfg.latent_steps}" + (f" rank {w.rank}" if w.size > 1 else "")
    per_token = kv_bytes_per_token(lm.model)
    with open(path, "a", encoding="utf-8") as fh, tqdm(total=len(todo), desc=desc, disable=not progress) as bar:
        rt.progress = BatchProgress(bar) if progress else None
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start : start + cfg.batch_size]
            gens = None
            if cfg.temperature > 0:
                gens = [torch.Generator(lm.device).manual_seed(question_seed(cfg.seed, ex.id)) for ex in batch]
            src = [sources[ex.id] for ex in batch]
            memory = MemoryInputs([d.question for d in src], [row_seed(cfg.seed, d.id) for d in src])
            t0 = time.perf_counter()
            generations = method(rt, [ex.question for ex in batch], answer_format, gens, memory)
            seconds = (time.perf_counter() - t0) / len(batch)
            scores = score_many(task, [g.text for g in generations], batch)
            rows = [record(s, ex, g, seconds, per_token) for s, ex, g in zip(scores, batch, generations)]
            for row, d in zip(rows, src):
                row.update(memory_control=cfg.memory_control, donor=d.id if d.id != row["id"] else None)
            store.append(fh, rows)
            bar.update(len(batch))


def run_eval(cfg: EvalConfig, progress: bool = True) -> dict:
    """Run (or resume) one evaluation; returns its summary (on rank 0; other ranks return {})."""
    task, examples, data = load_task(cfg)
    sources = memory_sources(cfg, examples)
    examples = examples[: cfg.limit]
    w = world()
    out = Path(cfg.output)
    _check_dir(cfg, data, out, w.rank)
    own = store.shard_name(w.rank, w.size)
    done = store.read_all(out, own=own)
    mine = [ex for i, ex in enumerate(examples) if i % w.size == w.rank and ex.id not in done]
    # Longest first, so batches hold similar lengths (less padding) and a memory error shows up at once.
    mine.sort(key=lambda ex: -len(ex.question))
    with PeakMemory() as peak:
        if mine:
            _generate(cfg, task, mine, sources, out / own, w, progress)
    w.barrier()
    if w.rank != 0:
        return {}
    rows = store.merge(out, [ex.id for ex in examples]) if w.size > 1 else list(store.read_all(out).values())
    wanted = {ex.id for ex in examples}
    rows = [r for r in rows if r["id"] in wanted]
    # A rerun with nothing left to do keeps the memory its point was measured at (unknown if its summary broke).
    memory = peak.result() if mine else read_summary(out) or {}
    return write_summary(cfg, data, out, rows, memory, trained_latent_steps(cfg.adapter), relog=bool(mine))


def write_summary(
    cfg: EvalConfig, data: Data, out: Path, rows: list[dict], memory: dict, train_m: int | None, relog: bool
) -> dict:
    """summary.json from the rows; a W&B run when asked for and (`relog`) the rows changed since the last one.
    `train_m`: the m the adapter was trained at, read when the run was made (an adapter path can move)."""
    summary = {
        "task": data.reported_as,
        "method": cfg.method,
        "topology": "-" if cfg.method == "single" else cfg.topology,
        "latent_steps": cfg.latent_steps if cfg.method == "latent_mas" else 0,
        "semantics": cfg.semantics,
        "prompts": cfg.method_config().prompt_set.name,
        "expert_positions": cfg.expert_positions,
        "memory_control": cfg.memory_control,
        "max_new_tokens": cfg.max_new_tokens,
        "seed": cfg.seed,
        "model": cfg.model,
        "adapter": cfg.adapter,
        "train_latent_steps": train_m,
        **summarize(rows),
        "peak_rss_mb": memory.get("peak_rss_mb"),
        "peak_gpu_mb": memory.get("peak_gpu_mb"),
        "data": asdict(data),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    logged = out / "wandb.logged"  # a rerun of a finished point does not log a second W&B run
    if cfg.wandb and (relog or not logged.exists()):
        from latentrl.tracking import log_eval

        record = {**asdict(cfg), "data": asdict(data)}
        summary["wandb_mode"] = log_eval(out, cfg.wandb_project, cfg.wandb_group, record, summary, rows)
        logged.write_text(summary["wandb_mode"])
    return summary
