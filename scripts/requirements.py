"""Print the project's requirements for some extras, with exact pins that replace or add to its own.

Why this exists: pip cannot override a pin, and a profile needs to. vLLM requires an older transformers
than the project pins, so `PROFILE=vllm scripts/bootstrap.sh` installs latentrl with `--no-deps` and then
this list: the project's own pins (from pyproject.toml, the single source), transformers swapped, vllm added.

Usage: python scripts/requirements.py EXTRAS [PIN ...]    e.g. `dev transformers==5.17.0` (EXTRAS may be "")
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def name(requirement: str) -> str:
    """The normalized distribution name of a requirement string."""
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def project_requirements(extras: list[str], pyproject: Path = PYPROJECT) -> list[str]:
    """Core dependencies plus the extras' ones, expanding self-references like `latentrl[train]`."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    reqs, todo, seen = list(project["dependencies"]), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"requirements: unknown extra '{extra}'; extras are {sorted(optional)}")
        seen.add(extra)
        for req in optional[extra]:
            if name(req) == project["name"]:
                todo += re.search(r"\[(.*)\]", req).group(1).split(",")
            else:
                reqs.append(req)
    return reqs


def with_pins(reqs: list[str], pins: list[str]) -> list[str]:
    """`reqs` with each pinned name's requirement replaced by its pin; pins for new names are appended."""
    bad = [p for p in pins if "==" not in p]
    if bad:
        raise SystemExit(f"requirements: profile pins must be exact (name==version): {bad}")
    by_name = {name(p): p for p in pins}
    out = [by_name.pop(name(r), r) for r in reqs]
    return out + list(by_name.values())


if __name__ == "__main__":
    extras = [e for e in (sys.argv[1] if len(sys.argv) > 1 else "").split(",") if e]
    print("\n".join(with_pins(project_requirements(extras), sys.argv[2:])))
