"""`latentrl` command line: `eval` runs one evaluation, `demo` compares the three methods offline."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from latentrl.eval.report import markdown_table
from latentrl.eval.runner import ConfigError, EvalConfig, run_eval
from latentrl.models import ModelLoadError
from latentrl.tasks import DataUnavailable

_ARG_TYPES = {"int": int, "float": float, "str": str, "int | None": int, "str | None": str}


def add_config_args(parser: argparse.ArgumentParser, cls: type = EvalConfig) -> None:
    """One --flag per dataclass field, with the field's help text and default."""
    for f in dataclasses.fields(cls):
        kind = _ARG_TYPES.get(f.type, str)
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=kind,
            default=f.default,
            help=f"{f.metadata.get('help', '')} (default: {f.default})",
        )


def _eval(args: argparse.Namespace) -> None:
    cfg = EvalConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EvalConfig)})
    summary = run_eval(cfg)
    print(markdown_table([summary]))
    print(f"\npredictions and summary in {cfg.output}/")


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
    print(markdown_table(summaries))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latentrl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_eval = sub.add_parser("eval", help="evaluate one method on one task (resumable)")
    add_config_args(p_eval)
    p_eval.set_defaults(fn=_eval)
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
        args.fn(args)
    except (ConfigError, ModelLoadError, DataUnavailable, ValueError) as err:
        print(f"latentrl: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latentrl: interrupted; rerun the same command to resume where it stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
