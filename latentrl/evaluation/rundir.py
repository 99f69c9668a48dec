"""The run directory: what an evaluation writes and how a rerun reads it back.

    DIR/config.json        what was run and on which data (source, size, sha256); a changed config or
                           changed data refuses to mix into a directory that holds predictions
    DIR/predictions.jsonl  one line per question (`record`), fsynced after every batch; under data
                           parallelism each rank appends to its own predictions.rank{R}.jsonl and rank 0
                           merges them at the end, so ranks never write the same file
    DIR/summary.json       accuracy (strict and flexible), tokens, forwards, wall-clock, this point's peak
                           memory, the data record

Every reader takes all `predictions*.jsonl` files, so a rerun resumes whatever the world size was; a torn
last line (a killed write) is ignored and cut off by its writer. Rows written under older names are read
in today's (`upgraded`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict
from pathlib import Path

from latentrl.evaluation.config import ConfigError, EvalConfig
from latentrl.evaluation.stats import summarize
from latentrl.mas import Generation
from latentrl.tasks import Example, Score
from latentrl.tasks.sources import Data

MERGED = "predictions.jsonl"


def shard_name(rank: int, world: int) -> str:
    return MERGED if world == 1 else f"predictions.rank{rank}.jsonl"


def read_rows(path: Path, repair: bool = False) -> list[dict]:
    """Complete JSON lines of `path`; a torn last line (killed mid-write) is ignored, and cut off if `repair`."""
    if not path.exists():
        return []
    rows, good = [], 0
    raw = path.read_bytes()
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            rows.append(upgraded(json.loads(line)))
        except json.JSONDecodeError:
            break
        good += len(line)
    if repair and good != len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(good)
    return rows


def upgraded(row: dict) -> dict:
    """A prediction row in today's names: rows written before the rename called the per-question total of
    latent steps `latent_steps`, which elsewhere means m."""
    if "latent_steps" in row and "latent_steps_total" not in row:
        row["latent_steps_total"] = row.pop("latent_steps")
    return row


def read_all(out: Path, own: str | None = None) -> dict[str, dict]:
    """id -> row over every prediction file in `out`; only `own` (this process's file) is repaired."""
    done: dict[str, dict] = {}
    for path in sorted(out.glob("predictions*.jsonl")):
        for row in read_rows(path, repair=path.name == own):
            done.setdefault(row["id"], row)
    return done


def append(fh, rows: list[dict]) -> None:
    """Append rows and make them durable before the next batch starts."""
    fh.write("".join(json.dumps(r) + "\n" for r in rows))
    fh.flush()
    os.fsync(fh.fileno())


def merge(out: Path, order: list[str]) -> list[dict]:
    """Rewrite all shards into one `predictions.jsonl` in `order` (ids), atomically; remove the shards."""
    done = read_all(out)
    rows = [done[i] for i in order if i in done] + [r for i, r in done.items() if i not in set(order)]
    rewrite(out, rows)
    return rows


def rewrite(out: Path, rows: list[dict]) -> None:
    """`rows` as the one `predictions.jsonl`, replaced atomically; the per-rank shards removed."""
    tmp = out / (MERGED + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, out / MERGED)
    for path in out.glob("predictions.rank*.jsonl"):
        path.unlink()


def check_dir(cfg: EvalConfig, data: Data, out: Path, rank: int) -> None:
    """Refuse a directory holding predictions of another config or other data; else (re)write config.json.

    A directory without predictions takes the new config, so a run that failed before its first batch
    (a typo in --model, a missing GPU) does not lock its directory."""
    path = out / "config.json"
    prompts = cfg.method_config().prompt_set
    if path.exists() and read_all(out):
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


def adapter_training(adapter: str | None) -> dict:
    """How an adapter was trained, from the recipe saved beside it: its m and memory control (None: not known
    or no adapter). Read when a run is made, since an adapter directory can move or be replaced later."""
    recipe = Path(adapter) / "latentrl_recipe.json" if adapter else None
    saved = json.loads(recipe.read_text()) if recipe and recipe.exists() else {}
    control = saved.get("memory_control", "none") if saved else None  # older recipes trained with real memory
    return {"train_latent_steps": saved.get("latent_steps"), "train_memory_control": control}


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
        "error": score.error,
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


def write_summary(
    cfg: EvalConfig, data: Data, out: Path, rows: list[dict], memory: dict, training: dict, relog: bool
) -> dict:
    """summary.json from the rows; a W&B run when asked for and (`relog`) the rows changed since the last one.
    `training`: `adapter_training` of the run's adapter, as read when the run was made."""
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
        "train_latent_steps": training.get("train_latent_steps"),
        "train_memory_control": training.get("train_memory_control"),
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
