"""Evaluation: configs (config), the run directory (rundir), the loop (runner), grids, summaries, reports."""

from latentrl.evaluation.config import ConfigError, EvalConfig
from latentrl.evaluation.runner import run_eval

__all__ = ["ConfigError", "EvalConfig", "run_eval"]
