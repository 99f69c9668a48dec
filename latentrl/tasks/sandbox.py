"""Moved to `latentrl.sandbox`; this re-export lasts until every importer uses the new path."""

from latentrl.sandbox import enable_code_execution  # noqa: F401
