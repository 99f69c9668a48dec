"""Imports every task module so each registers itself. Add new task modules here."""

from latentrl.tasks import aime, arc, arithmetic, chains, code, gpqa, gsm8k, math500, medqa  # noqa: F401
