"""Grading: canonical pass counts and throughput (programs per second) of the code sandbox.

    .venv/bin/python -m bench.grading --canonical                  # HumanEval 164 and offline MBPP 500
    .venv/bin/python -m bench.grading --rounds 5                   # throughput, canonical HumanEval, 2 workers
    .venv/bin/python -m bench.grading --rounds 5 --old /tmp/old    # the same for a checkout of another commit
                                                                   # (its latentrl.tasks.sandbox), rounds alternating

A round grades all 164 canonical HumanEval solutions with `grade_many(workers=2)`; the figure is the median
over rounds. Each side runs in a subprocess of its own checkout, so both import their own code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUND = """
import json, sys, time
sys.path.insert(0, {root!r})
try:
    from latentrl import sandbox
    sandbox.TestJob  # the package (after the split), not an older module of the same name
except (ImportError, AttributeError):
    from latentrl.tasks import sandbox
from latentrl.tasks import code
sandbox.enable_code_execution()
examples = code.load_humaneval("offline", None)
jobs = [code.test_job(ex.meta["reference"], ex) for ex in examples]
start = time.monotonic()
results = sandbox.grade_many(jobs, workers={workers})
seconds = time.monotonic() - start
print(json.dumps({{"programs": len(jobs), "passed": sum(r.passed for r in results), "seconds": seconds}}))
"""


def one_round(root: Path, workers: int) -> dict:
    source = ROUND.format(root=str(root), workers=workers)
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        sys.exit(f"grading round in {root} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def throughput(rounds: int, workers: int, old: Path | None) -> None:
    sides = {"new": ROOT} | ({"old": old} if old else {})
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(rounds):
        for name, root in sides.items():
            result = one_round(root, workers)
            rates[name].append(result["programs"] / result["seconds"])
            print(f"round {r + 1} {name}: {result['passed']}/{result['programs']} passed, "
                  f"{rates[name][-1]:.2f} programs/s", flush=True)  # fmt: skip
    for name, values in rates.items():
        print(f"{name}: median {statistics.median(values):.2f} programs/s at {workers} workers ({rounds} rounds)")


def canonical() -> None:
    from latentrl import sandbox
    from latentrl.tasks import code

    sandbox.enable_code_execution()
    for name, load in (("HumanEval", code.load_humaneval), ("MBPP", code.load_mbpp)):
        examples = load("offline", None)
        results = sandbox.grade_many([code.test_job(ex.meta["reference"], ex) for ex in examples], workers=2)
        failed = [(ex.id, r.status, r.stderr.strip()[-300:]) for ex, r in zip(examples, results) if not r.passed]
        print(f"{name}: {len(examples) - len(failed)}/{len(examples)} canonical solutions pass")
        for failure in failed:
            print("  not passed:", *failure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canonical", action="store_true", help="pass counts of the canonical solutions")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per side")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--old", type=Path, help="a checkout of another commit to compare with")
    args = parser.parse_args()
    if args.old and not (args.old / "latentrl").is_dir():
        sys.exit(f"--old {args.old}: not a latentrl checkout")
    os.chdir(ROOT)
    canonical() if args.canonical else throughput(args.rounds, args.workers, args.old)


if __name__ == "__main__":
    main()
