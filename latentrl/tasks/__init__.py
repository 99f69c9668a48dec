"""Benchmarks: loading, answer format, extraction, scoring."""

from latentrl.tasks.registry import TASKS, DataUnavailable, Example, Score, Task, get_task

__all__ = ["TASKS", "DataUnavailable", "Example", "Score", "Task", "get_task"]
