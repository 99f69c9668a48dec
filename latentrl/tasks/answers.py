"""Answer extraction and comparison, shared by every method, the evaluator and (later) the rewards.

Two readings of each output, reported side by side:
- strict: the last brace-balanced \\boxed{...} (or \\fbox{...}) after removing <think> blocks;
- flexible: strict, else "the answer is X", else the last number in the text.
A missing answer is None and scores as wrong; it never raises.
"""

from __future__ import annotations

import math
import re

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*([^\n]+)", re.IGNORECASE)


def strip_think(text: str) -> str:
    """Remove closed <think>...</think> blocks; an unclosed block swallows the rest (no answer in it)."""
    text = _THINK.sub("", text)
    start = text.find("<think>")
    return text if start < 0 else text[:start]


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} / \\fbox{...} with balanced braces, or of `\\boxed 5`."""
    best = None
    for m in re.finditer(r"\\(?:boxed|fbox)(\s*)", text):
        i = m.end()
        if text.startswith("{", i):
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    best = text[i + 1 : j]
                    break
        elif m.group(1):  # "\boxed 5": the next word
            word = re.match(r"[^\s$]+", text[i:])
            best = word.group(0) if word else best
    return best.strip() if best is not None else None


def normalize_number(s: str) -> float | None:
    """'$1,234.50.' -> 1234.5; '\\frac{1}{2}' -> 0.5; text with no number -> None."""
    s = s.replace("\\!", "").replace("\\,", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"\\text\{([^}]*)\}", r"\1", s).strip().rstrip(".")
    frac = re.fullmatch(r"-?\\d?frac\{(-?\d+)\}\{(-?\d+)\}", s)
    if frac and int(frac.group(2)) != 0:
        value = int(frac.group(1)) / int(frac.group(2))
        return -value if s.startswith("-") else value
    nums = _NUMBER.findall(s)
    if not nums:
        return None
    try:
        return float(nums[0].replace(",", ""))
    except ValueError:
        return None


def extract_math(text: str) -> tuple[str | None, str | None]:
    """(strict, flexible) raw answer strings."""
    body = strip_think(text)
    strict = last_boxed(body)
    if strict is not None:
        return strict, strict
    said = _ANSWER_IS.findall(body)
    if said:
        return None, said[-1].strip()
    nums = _NUMBER.findall(body)
    return None, nums[-1] if nums else None


def numbers_equal(pred: str | None, gold: str, rel_tol: float = 1e-6, abs_tol: float = 1e-6) -> bool:
    if pred is None:
        return False
    p, g = normalize_number(pred), normalize_number(gold)
    if p is None or g is None:
        return pred.strip() == gold.strip()
    return math.isclose(p, g, rel_tol=rel_tol, abs_tol=abs_tol)
