"""The evaluation loop: a run (or its resume) of one point, batch by batch.

Rerunning the same command skips finished questions (`rundir`), so a killed run loses at most one batch.
Sampling draws from a generator per question, seeded by the run seed and the question id, so a resumed
run samples what an uninterrupted one would. Questions run longest first (batches of similar length pad
less); predictions carry their ids. A process keeps the last model it loaded, so the points of a grid
share one load. Under `accelerate launch` / `torchrun` each rank takes every WORLD_SIZE-th question and
rank 0 merges.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from latentrl.evaluation import rundir
from latentrl.evaluation.config import EvalConfig
from latentrl.evaluation.resources import PeakMemory
from latentrl.latent.controls import donors, row_seed
from latentrl.mas import Runtime, get_method
from latentrl.mas.pipeline import MemoryInputs
from latentrl.models import LoadedModel, eos_token_ids, load_model
from latentrl.tasks import Example, Task
from latentrl.tasks.registry import score_many
from latentrl.tasks.sources import Data, load_examples


def load_task(cfg: EvalConfig) -> tuple[Task, list[Example], Data]:
    """The validated task, all its examples (before --limit) and the data's record. Fails before a model loads;
    code execution is enabled only for a task that runs code, which `validate` allows only on the opt-in."""
    task = cfg.validate()
    examples, data = load_examples(task, cfg.data_source, cfg.data_file)
    if task.executes_code:
        from latentrl.sandbox import enable_code_execution

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
    per_token = rundir.kv_bytes_per_token(lm.model)
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
            rows = [rundir.record(s, ex, g, seconds, per_token) for s, ex, g in zip(scores, batch, generations)]
            for row, d in zip(rows, src):
                row.update(memory_control=cfg.memory_control, donor=d.id if d.id != row["id"] else None)
            rundir.append(fh, rows)
            bar.update(len(batch))


def run_eval(cfg: EvalConfig, progress: bool = True) -> dict:
    """Run (or resume) one evaluation; returns its summary (on rank 0; other ranks return {})."""
    task, examples, data = load_task(cfg)
    sources = memory_sources(cfg, examples)
    examples = examples[: cfg.limit]
    w = world()
    out = Path(cfg.output)
    rundir.check_dir(cfg, data, out, w.rank)
    own = rundir.shard_name(w.rank, w.size)
    done = rundir.read_all(out, own=own)
    mine = [ex for i, ex in enumerate(examples) if i % w.size == w.rank and ex.id not in done]
    # Longest first, so batches hold similar lengths (less padding) and a memory error shows up at once.
    mine.sort(key=lambda ex: -len(ex.question))
    with PeakMemory() as peak:
        if mine:
            _generate(cfg, task, mine, sources, out / own, w, progress)
    w.barrier()
    if w.rank != 0:
        return {}
    rows = rundir.merge(out, [ex.id for ex in examples]) if w.size > 1 else list(rundir.read_all(out).values())
    wanted = {ex.id for ex in examples}
    rows = [r for r in rows if r["id"] in wanted]
    # A rerun with nothing left to do keeps the memory its point was measured at (unknown if its summary broke).
    memory = peak.result() if mine else rundir.read_summary(out) or {}
    training = rundir.adapter_training(cfg.adapter)
    return rundir.write_summary(cfg, data, out, rows, memory, training, relog=bool(mine))
