"""Markdown tables of run summaries."""

from __future__ import annotations

COLUMNS = (
    ("method", "method", "{}"),
    ("topology", "topology", "{}"),
    ("m", "latent_steps", "{}"),
    ("n", "n", "{}"),
    ("acc", "accuracy", "{:.3f}"),
    ("acc 95% CI", "accuracy_ci95", "[{:.2f}, {:.2f}]"),
    ("strict acc", "accuracy_strict", "{:.3f}"),
    ("invalid fmt", "invalid_format_rate", "{:.2f}"),
    ("out tokens/q", "output_tokens", "{:.1f}"),
    ("forwards/q", "forwards", "{:.1f}"),
    ("s/q", "seconds_per_question", "{:.2f}"),
)


def _cell(fmt: str, value) -> str:
    return fmt.format(*value) if isinstance(value, list | tuple) else fmt.format(value)


def markdown_table(summaries: list[dict]) -> str:
    head = "| " + " | ".join(c[0] for c in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    rows = ["| " + " | ".join(_cell(fmt, s[key]) for _, key, fmt in COLUMNS) + " |" for s in summaries]
    return "\n".join([head, rule, *rows])
