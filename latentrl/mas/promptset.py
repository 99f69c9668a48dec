"""Prompt sets: every text an agent is shown, as data, chosen by name or by file (`--prompts NAME|PATH`).

Why data: the toolkit's prompts and the reference implementation's differ in structure (system turn,
per-family final instructions, notes about the memory), and comparing the two methods fairly means
swapping the whole set without touching code. Shipped sets live in `prompt_sets/<name>.yaml`;
`default.yaml` documents the format. YAML or JSON (JSON is YAML).
"""

from __future__ import annotations

import functools
import hashlib
import json
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from latentrl.mas.roles import SOLVER, TOPOLOGIES
from latentrl.tasks.registry import FAMILIES

FIELDS = ("question", "context", "answer_format")  # placeholders a template may use
KEYS = ("system", "latent_note", "answer_formats", "solver", "topologies")
SHIPPED = resources.files("latentrl.mas") / "prompt_sets"

Template = tuple[str, ...]  # paragraphs, joined by blank lines


@dataclass(frozen=True)
class PromptSet:
    name: str  # the shipped name or the path it was loaded from
    system: str | None  # the system turn, if any
    latent_note: str | None  # LatentMAS {context}: a note naming the {agents} whose memory is read
    answer_formats: dict[str, str]  # family -> final-agent instruction; a missing family: the task's own
    templates: dict[str, Template]  # "solver" and "<topology>/<role>" -> template
    sha256: str  # of the parsed content (comments and layout aside): a resumed run checks it

    def message(self, key: str, question: str, context: str | None = None, answer_format: str | None = None) -> str:
        """The user message of agent `key` ("solver" or "<topology>/<role>"); empty paragraphs are left out."""
        values = {"question": question, "context": context or "", "answer_format": answer_format or ""}
        paragraphs = (p.format(**values).strip() for p in self.templates[key])
        return "\n\n".join(p for p in paragraphs if p)

    def answer_format(self, family: str, own: str) -> str:
        """The final agent's instruction for a task of `family` whose own instruction is `own`."""
        return self.answer_formats.get(family, own)

    def note(self, agents: list[str]) -> str | None:
        """LatentMAS: what an agent is told about the memory of `agents` (None: nothing)."""
        return self.latent_note.format(agents=", ".join(agents)) if agents and self.latent_note else None


def shipped_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in SHIPPED.iterdir() if p.name.endswith(".yaml"))


@functools.cache
def shipped(name: str) -> PromptSet:
    """A shipped set, parsed once per process."""
    return parse(name, (SHIPPED / f"{name}.yaml").read_text(encoding="utf-8"))


def load_prompt_set(spec: str) -> PromptSet:
    """A shipped set by name, else a YAML/JSON file by path. Raises FileNotFoundError or ValueError with
    one line naming the file and the problem."""
    if (SHIPPED / f"{spec}.yaml").is_file():
        return shipped(spec)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"prompt set '{spec}': not a shipped set ({', '.join(shipped_names())}) nor a file")
    return parse(str(path), path.read_text(encoding="utf-8"))


def parse(name: str, text: str) -> PromptSet:
    def bad(problem: str) -> ValueError:
        return ValueError(f"prompt set {name}: {problem}")

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise bad(f"not valid YAML/JSON ({' '.join(str(err).split())})") from err
    if not isinstance(data, dict):
        raise bad("the top level must be a mapping with keys " + ", ".join(KEYS))
    if unknown := set(data) - set(KEYS):
        raise bad(f"unknown keys {sorted(unknown)}; a set has {', '.join(KEYS)}")
    for key in ("system", "latent_note"):
        if not isinstance(data.get(key), str | None):
            raise bad(f"'{key}' must be a string or null")
    if data.get("latent_note"):
        check_fields(data["latent_note"], ("agents",), "'latent_note'", bad)
    formats = data.get("answer_formats") or {}
    if not isinstance(formats, dict) or not all(isinstance(v, str) for v in formats.values()):
        raise bad("'answer_formats' must map task families to strings")
    if unknown := set(formats) - set(FAMILIES):
        raise bad(f"'answer_formats' has unknown families {sorted(unknown)}; families are {', '.join(FAMILIES)}")
    templates = {SOLVER: template(data.get("solver"), "'solver'", bad)}
    topologies = data.get("topologies")
    if not isinstance(topologies, dict) or set(topologies) != set(TOPOLOGIES):
        raise bad(f"'topologies' must map exactly {', '.join(TOPOLOGIES)} to their roles")
    for topo, roles in TOPOLOGIES.items():
        given = topologies[topo]
        if not isinstance(given, dict) or set(given) != set(roles):
            raise bad(f"topology '{topo}' must give a template for exactly the roles {', '.join(roles)}")
        templates.update({f"{topo}/{r}": template(given[r], f"'{topo}/{r}'", bad) for r in roles})
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return PromptSet(name, data.get("system"), data.get("latent_note"), formats, templates, digest)


def template(value, where: str, bad) -> Template:
    """A template from a string or a list of strings; it must ask the question and use known fields only."""
    paragraphs = [value] if isinstance(value, str) else value
    if not isinstance(paragraphs, list) or not paragraphs or not all(isinstance(p, str) for p in paragraphs):
        raise bad(f"{where} must be a string or a non-empty list of strings")
    used = set().union(*(check_fields(p, FIELDS, where, bad) for p in paragraphs))
    if "question" not in used:
        raise bad(f"{where} never uses {{question}}")
    return tuple(paragraphs)


def check_fields(text: str, allowed: tuple[str, ...], where: str, bad) -> set[str]:
    """The placeholders of a str.format template; refuses unknown ones and broken braces."""
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as err:
        raise bad(f"{where}: {err} (write literal braces as {{{{ and }}}})") from err
    if unknown := used - set(allowed):
        raise bad(f"{where} uses unknown placeholders {sorted(unknown)}; allowed: {', '.join(allowed)}")
    return used
