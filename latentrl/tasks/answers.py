"""Answer extraction and comparison, shared by every method, the evaluator and the rewards.

Every output first loses its thinking: closed <think>...</think> blocks, everything before a lone
</think> (chat templates that open the block in the prompt), and everything after an unclosed <think>.
Unicode minus signs (U+2212, en dash, ...) are read as '-'. Then two readings, reported side by side:
- strict: the last non-empty brace-balanced \\boxed{...} (or \\fbox{...}, \\boxed 5); the format the prompt asks for;
- flexible: strict, else the value the last "the answer is ..." / "Answer: ..." sentence concludes with
  ('18 - 3 = 15' -> '15'; a verdict such as "the answer is correct" is skipped), else the last number.
A missing answer is None and scores as wrong; it never raises.

One numeric rule for every numeric task (`normalize_number`): GSM8K and MATH-500 compare with
`math_equal` (normalized string match, else numbers with tolerance, else a symbolic match by math-verify
when installed); AIME reads `integer_answer`, the same number restricted to integers 0..999.
"""

from __future__ import annotations

import logging
import math
import re

# math-verify warns once per process that its timeouts are off; they are, on purpose (sympy_safe guards inputs).
logging.getLogger("math_verify").setLevel(logging.ERROR)

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_MINUS = re.compile("[\u2212\u2012\u2013\u2014\ufe63\uff0d]")  # minus sign, figure/en/em dash, small/full-width
_NUMBER = re.compile(r"-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*([^\n]+)", re.IGNORECASE)
# "the answer is (not) correct": a judgment of an answer (a model checking its own work), not an answer.
_VERDICT = re.compile(
    r"(?:(?:not|also|indeed|definitely|therefore)\s+)*(?:in)?(?:correct|right|wrong|accurate|valid|verified|"
    r"confirmed|consistent|reasonable)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")  # a full stop, not a decimal point
_EQUALS = re.compile(r"(?<![<>!=])=(?!=)")  # '=', not '<=', '>=', '!=', '=='


def strip_think(text: str) -> str:
    """The text outside the thinking: closed blocks removed; before a lone </think> and after an unclosed
    <think> nothing counts (an unclosed block means no answer)."""
    text = _THINK.sub("", text)
    close = text.rfind("</think>")
    if close >= 0:  # the prompt opened the block (e.g. Qwen3's template): the answer follows the close
        text = text[close + len("</think>") :]
    start = text.find("<think>")
    return text if start < 0 else text[:start]


def plain_minus(text: str) -> str:
    """Unicode minus signs and dashes as ASCII '-': '−3' must not read as 3."""
    return _MINUS.sub("-", text)


def conclusion(sentence: str) -> str:
    """What an answer sentence concludes with: cut at the full stop, then the part after the last '='.

    'So the answer is 18 - 3 = 15. Check: 3 + 4 = 7' -> '15'.
    """
    sentence = _SENTENCE_END.split(sentence, maxsplit=1)[0]
    return _EQUALS.split(sentence)[-1].strip()


def last_boxed(text: str) -> str | None:
    """Content of the last non-empty \\boxed{...} / \\fbox{...} with balanced braces, or of `\\boxed 5`.

    An empty box is the instruction's placeholder echoed ("I put it in \\boxed{}"), not an answer: it neither
    hides the answer sentence after it nor earns the format reward (a GRPO policy learned to emit `\\boxed{}`).
    """
    boxes = boxed(text)
    return boxes[-1] if boxes else None


def boxed(text: str) -> list[str]:
    """Contents of every non-empty box of `text`, in order (see `last_boxed`)."""
    found_all = []
    for m in re.finditer(r"\\(?:boxed|fbox)(\s*)", text):
        i, found = m.end(), None
        if text.startswith("{", i):
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    found = text[i + 1 : j]
                    break
        elif m.group(1):  # "\boxed 5": the next word
            word = re.match(r"[^\s$]+", text[i:])
            found = word.group(0) if word else None
        if found and found.strip():
            found_all.append(found.strip())
    return found_all


def extract_math(text: str) -> tuple[str | None, str | None]:
    """(strict, flexible) raw answer strings."""
    body = plain_minus(strip_think(text))
    strict = last_boxed(body)
    if strict is not None:
        return strict, strict
    said = _ANSWER_IS.findall(body)
    if said:
        # The last sentence that states a value: "the final answer is correct" is a verdict, not an answer.
        values = [v for v in map(conclusion, said) if not _VERDICT.match(v)]
        return None, values[-1] if values else None
    nums = _NUMBER.findall(body)
    return None, nums[-1] if nums else None


# Competition math (MATH-500, AIME): answers are LaTeX expressions, not only numbers.

_UNIT = re.compile(r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\{\s*[a-zA-Z][a-zA-Z .]*\}(?:\^\{?\d\}?)?$")
_WRAPPER = re.compile(r"\\(?:text|textbf|mbox|mathrm|mathbf)\{([^{}]*)\}")
_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")  # '1.2e4' too
_SCIENTIFIC = re.compile(r"(-?(?:\d+(?:\.\d*)?|\.\d+))(?:\\times|\\cdot|\*|×)10\^\{?([-+]?\d+)\}?")
_WORDS_AROUND = re.compile(r"(?:[a-zA-Z]{2,})?(-?(?:\d+(?:\.\d*)?|\.\d+))(?:[a-zA-Z]{2,}[a-zA-Z.]*)?")
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
    s = plain_minus(s).strip().strip("$").rstrip(". ")
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
    """The value of a normalized answer that is just a number ('1.2e4' and '1.2\\times10^{4}' included) or an
    integer fraction; else None (also for values too large for a float)."""
    value = None
    if _PLAIN_NUMBER.fullmatch(s):
        value = float(s)
    elif sci := _SCIENTIFIC.fullmatch(s):
        value = float(f"{sci.group(1)}e{sci.group(2)}")
    for pattern in _FRACTIONS:
        frac = pattern.fullmatch(s)
        if frac and int(frac.group(3)) != 0:
            value = (-1 if frac.group(1) else 1) * int(frac.group(2)) / int(frac.group(3))
    return value if value is not None and math.isfinite(value) else None


def normalize_number(s: str) -> float | None:
    """The single number an answer states, by one rule for every numeric task; None if it states none.

    '$1,234.50.' -> 1234.5; '\\frac{1}{2}' -> 0.5; '1.2 \\times 10^{4}' -> 12000; '18 - 3 = 15' -> 15 (what
    it concludes with); '18 apples' -> 18 (whole words around one number); '2 + 3', '2x', 'none' -> None.
    """
    normal = normalize_math(_EQUALS.split(s)[-1])
    value = as_number(normal)
    if value is None and (bare := _WORDS_AROUND.fullmatch(normal)):
        value = as_number(bare.group(1))
    return value


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
    """Normalized string match, else numeric match, else symbolic match (math-verify).

    Two whole numbers must be equal (1000001 is not 1000000, however close); the tolerance is for
    decimals and fractions ('0.333333' vs 1/3 is not equal, '\\frac{1}{2}' vs '0.5' is)."""
    if pred is None:
        return False
    p, g = normalize_math(pred), normalize_math(gold)
    if p == g:
        return True
    pn, gn = normalize_number(pred), normalize_number(gold)
    if pn is not None and gn is not None:
        if pn.is_integer() and gn.is_integer():
            return pn == gn
        return math.isclose(pn, gn, rel_tol=rel_tol, abs_tol=abs_tol)
    return symbolic_equal(pred, gold)


def integer_answer(pred: str | None) -> int | None:
    """An AIME-style answer (an integer 0..999) from a raw answer string, or None."""
    if pred is None:
        return None
    value = normalize_number(pred)
    if value is None or value != int(value) or not 0 <= value <= 999:
        return None
    return int(value)
