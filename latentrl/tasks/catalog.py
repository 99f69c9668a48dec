"""Imports every task module so each registers itself. Add new task modules here."""

from latentrl.tasks import gsm8k  # noqa: F401
