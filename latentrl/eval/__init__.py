"""Evaluation: the resumable runner and its summaries."""

from latentrl.eval.runner import ConfigError, EvalConfig, run_eval

__all__ = ["ConfigError", "EvalConfig", "run_eval"]
