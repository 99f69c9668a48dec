"""`latentrl` command line.

latentrl eval ...     one evaluation, or a grid when an axis gets a comma-separated list
latentrl report DIR   markdown table of the runs under DIR (seeds aggregated)
latentrl rescore DIR  score the finished runs under DIR again with the current extraction (no generation)
latentrl demo         single / text_mas / latent_mas on GSM8K, offline, embedded model
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from latentrl.evaluation import ConfigError, EvalConfig, run_eval
from latentrl.evaluation.grid import AXES, plan
from latentrl.evaluation.report import find_summaries, group_seeds, markdown_table
from latentrl.evaluation.rescore import rescore
from latentrl.models import ModelLoadError
from latentrl.tasks import DataUnavailable
from latentrl.tracking import TrackingError

_TYPES = {"int": int, "float": float, "str": str, "int | None": int, "str | None": str}
# Bad input a user can fix: one line on stderr, exit status 2, never a traceback.
INPUT_ERRORS = (ConfigError, ModelLoadError, DataUnavailable, TrackingError, FileNotFoundError, ValueError)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the eval usage alone is a screenful), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _list_of(kind: type):
    what = {int: "integers", float: "numbers"}.get(kind, "names")

    def parse(text: str) -> list:
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got '{text}'") from err
        if not values:  # '--task ""' must not fall back to the default
            raise argparse.ArgumentTypeError(f"expected one or more comma-separated {what}, got '{text}'")
        return values

    return parse


def add_config_args(parser: argparse.ArgumentParser, cls: type = EvalConfig) -> None:
    """One --flag per dataclass field with its help text; grid axes take comma-separated lists."""
    for f in dataclasses.fields(cls):
        flag, helptext = "--" + f.name.replace("_", "-"), f.metadata.get("help", "")
        if f.type == "bool":
            parser.add_argument(flag, action="store_true", help=helptext)
        elif f.name in AXES:
            kind = _TYPES[f.type]
            parser.add_argument(flag, type=_list_of(kind), default=None, help=f"{helptext}; a comma-separated list "
                                f"makes a grid (default: {f.default})")  # fmt: skip
        else:
            parser.add_argument(flag, type=_TYPES.get(f.type, str), default=f.default,
                                help=f"{helptext} (default: {f.default})")  # fmt: skip


def _eval(args: argparse.Namespace) -> None:
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(EvalConfig)}
    points = plan({k: v for k, v in options.items() if not (k in AXES and v is None)}, nest=False)
    summaries = [s for cfg in points if (s := run_eval(cfg))]
    if summaries:
        print(markdown_table(group_seeds(summaries)))
        print(f"\npredictions and summaries under {args.output}/")


def _report(args: argparse.Namespace) -> None:
    print(markdown_table(group_seeds(find_summaries(args.dirs))))


def _rescore(args: argparse.Namespace) -> int:
    """One line per run: how many rows changed and the accuracy before -> after; unfinished runs are left."""
    missing = [d for d in args.dirs if not Path(d).is_dir()]
    if missing:
        raise FileNotFoundError(f"no such directory: {', '.join(missing)}")
    runs = sorted({p.parent for d in args.dirs for p in Path(d).rglob("predictions*.jsonl")})
    if not runs:
        raise FileNotFoundError(f"no evaluation run (predictions*.jsonl) under {', '.join(args.dirs)}")
    left = 0
    for out in runs:
        try:
            before, after, changed = rescore(out, args.allow_code_execution)
        except INPUT_ERRORS as err:  # one bad run does not stop the others
            print(f"{out}: {err}; left as it was", file=sys.stderr)
            left += 1
            continue
        acc = f"accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}"
        strict = f"strict {before['accuracy_strict']:.3f} -> {after['accuracy_strict']:.3f}"
        print(f"{out}: {changed}/{after['n']} rows rescored; {acc}, {strict}")
    return 1 if left else 0


DEMO_METHODS = (("single", 0), ("text_mas", 0), ("latent_mas", None))


def _demo(args: argparse.Namespace) -> None:
    """single / text_mas / latent_mas (sequential) on the first N GSM8K questions, embedded model, offline."""
    summaries = []
    for method, m in DEMO_METHODS:
        cfg = EvalConfig(
            method=method,
            latent_steps=args.latent_steps if m is None else m,
            limit=args.limit,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            data_source="offline",
            output=str(Path(args.output) / method),
        )
        print(f"== {method}", file=sys.stderr)
        summaries.append(run_eval(cfg))
    print(f"\nGSM8K, first {args.limit} questions, {EvalConfig.model}, greedy, sequential topology:\n")
    print(markdown_table(group_seeds(summaries)))


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="latentrl", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_eval = sub.add_parser("eval", help="evaluate methods on tasks (resumable; lists make a grid)")
    add_config_args(p_eval)
    p_eval.set_defaults(fn=_eval)
    p_report = sub.add_parser("report", help="markdown table of the runs under one or more directories")
    p_report.add_argument("dirs", nargs="+")
    p_report.set_defaults(fn=_report)
    p_rescore = sub.add_parser("rescore", help="score finished runs again from their saved texts (no generation)")
    p_rescore.add_argument("dirs", nargs="+", help="run directories, or directories above them")
    p_rescore.add_argument("--allow-code-execution", action="store_true", help="needed to rescore code tasks")
    p_rescore.set_defaults(fn=_rescore)
    p_demo = sub.add_parser("demo", help="offline comparison of single / text_mas / latent_mas on GSM8K")
    p_demo.add_argument("--limit", type=int, default=8)
    p_demo.add_argument("--latent-steps", type=int, default=8)
    p_demo.add_argument("--batch-size", type=int, default=8)
    p_demo.add_argument("--max-new-tokens", type=int, default=192)
    p_demo.add_argument("--output", default="runs/demo")
    p_demo.set_defaults(fn=_demo)
    args = parser.parse_args(argv)
    logging.getLogger("latentrl").addHandler(logging.StreamHandler())
    try:
        status = args.fn(args)
    except INPUT_ERRORS as err:
        print(f"latentrl: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latentrl: interrupted; rerun the same command to resume where it stopped", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
