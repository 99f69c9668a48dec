"""Prediction files: appended as produced, torn lines repaired, per-rank shards merged.

One process writes `predictions.jsonl`. Under data parallelism each rank appends to its own
`predictions.rank{R}.jsonl` and rank 0 merges them at the end, so ranks never write the same file.
Every reader takes all `predictions*.jsonl` files, so a rerun resumes whatever the world size was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

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
