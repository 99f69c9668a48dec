"""Answer extraction and comparison, shared by every method, the evaluator and (later) the rewards.

Two readings of each output, reported side by side:
- strict: the last brace-balanced \\boxed{...} (or \\fbox{...}) after removing <think> blocks;
- flexible: strict, else "the answer is X", else the last number in the text.
A missing answer is None and scores as wrong; it never raises.

Comparison: `numbers_equal` for number answers (GSM8K); `math_equal` for LaTeX answers (MATH-500): a
normalized string match, else a numeric match with tolerance, else a symbolic match by math-verify when
that package is installed; `integer_answer` for AIME.
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


# Competition math (MATH-500, AIME): answers are LaTeX expressions, not only numbers.

_UNIT = re.compile(r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\{\s*[a-zA-Z][a-zA-Z .]*\}(?:\^\{?\d\}?)?$")
_WRAPPER = re.compile(r"\\(?:text|textbf|mbox|mathrm|mathbf)\{([^{}]*)\}")
_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_FRACTIONS = (re.compile(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}"), re.compile(r"()(-?\d+)/(-?\d+)"))
_ASSIGNMENT = re.compile(r"^[a-zA-Z]\s*=\s*(?!=)")
_REWRITES = (
    ("\\left", ""),
    ("\\right", ""),
    ("\\displaystyle", ""),
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("{,}", ","),
)


def normalize_math(s: str) -> str:
    """A canonical string for comparing LaTeX answers: '$x = 1{,}000 \\text{ cm}.$' -> '1000'."""
    s = s.strip().strip("$").rstrip(". ")
    s = _UNIT.sub("", s)  # a trailing unit after a number: '5\\text{ cm}^2'
    s = _WRAPPER.sub(r"\1", s)
    for old, new in _REWRITES:
        s = s.replace(old, new)
    s = re.sub(r"\\(frac|sqrt)(\d)", r"\\\1{\2}", s)  # '\\frac43' -> '\\frac{4}3', '\\sqrt2' -> '\\sqrt{2}'
    s = re.sub(r"\\frac(\{[^{}]*\})(\d)", r"\\frac\1{\2}", s)  # -> '\\frac{4}{3}'
    s = re.sub(r"\^\s*\{?\\circ\}?|°|\\%|%|\\\$|\$", "", s)
    s = re.sub(r"(?<!\\)\\[!,;: ]|~", "", s)  # spacing commands, not the row break '\\\\ '
    s = _ASSIGNMENT.sub("", s)
    while re.search(r"\d,\d{3}(?!\d)", s):  # thousands separators (repeatedly: '1,234,567')
        s = re.sub(r"(\d),(\d{3})(?!\d)", r"\1\2", s)
    return re.sub(r"\s+", "", s).rstrip(".")


def as_number(s: str) -> float | None:
    """The value of a normalized answer that is just a number or an integer fraction; else None."""
    if _PLAIN_NUMBER.fullmatch(s):
        return float(s)
    for pattern in _FRACTIONS:
        frac = pattern.fullmatch(s)
        if frac and int(frac.group(3)) != 0:
            return (-1 if frac.group(1) else 1) * int(frac.group(2)) / int(frac.group(3))
    return None


def _exponent(s: str, i: int) -> str:
    """The exponent starting at s[i]: a brace group's content, one letter or digit, else (unsure) the rest."""
    if s.startswith("{", i):
        depth = 0
        for j in range(i, len(s)):
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            if depth == 0:
                return s[i + 1 : j]
    return s[i] if s[i : i + 1].isalnum() else s[i:]


def sympy_safe(s: str) -> bool:
    """False for inputs that could make sympy build astronomically large numbers (power towers, huge powers).

    math-verify runs here without its signal-based timeout (that only works in the main thread), so such
    inputs are refused up front instead.
    """
    if len(s) > 400 or re.search(r"(?:\d{5,}|[})])\s*!", s):  # 123456! or (10^{10})!
        return False
    for m in re.finditer(r"\^\s*", s):
        exponent = _exponent(s, m.end())
        if "^" in exponent or re.search(r"\d{5,}", exponent):
            return False
    return True


def symbolic_equal(pred: str, gold: str) -> bool:
    """math-verify's verdict on two LaTeX answers; False when the package is missing or anything fails."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return False
    if not (sympy_safe(pred) and sympy_safe(gold)):
        return False
    try:
        g, p = parse(f"${gold}$", parsing_timeout=None), parse(f"${pred}$", parsing_timeout=None)
        return bool(g and p and verify(g, p, timeout_seconds=None))
    except Exception:  # a parser or sympy failure on model output means "not shown equal"
        return False


def math_equal(pred: str | None, gold: str, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """Normalized string match, else numeric match with tolerance, else symbolic match (math-verify)."""
    if pred is None:
        return False
    p, g = normalize_math(pred), normalize_math(gold)
    if p == g:
        return True
    pn, gn = as_number(p), as_number(g)
    if pn is not None and gn is not None:
        return math.isclose(pn, gn, rel_tol=rel_tol, abs_tol=abs_tol)
    return symbolic_equal(pred, gold)


def integer_answer(pred: str | None) -> int | None:
    """An AIME-style answer (an integer 0..999) from a raw answer string, or None."""
    if pred is None:
        return None
    value = as_number(normalize_math(pred))
    if value is None or value != int(value) or not 0 <= value <= 999:
        return None
    return int(value)
