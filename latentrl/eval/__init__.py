"""Evaluation: the resumable runner, grids of runs, summaries and reports."""

from latentrl.eval.runner import ConfigError, EvalConfig, run_eval

__all__ = ["ConfigError", "EvalConfig", "run_eval"]
