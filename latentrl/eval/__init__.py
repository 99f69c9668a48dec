"""Evaluation: configs (config), the run directory (rundir), the loop (runner), grids, summaries, reports."""

from latentrl.eval.config import ConfigError, EvalConfig
from latentrl.eval.runner import run_eval

__all__ = ["ConfigError", "EvalConfig", "run_eval"]
