"""Multiple choice, shared by GPQA, ARC and MedQA: lettered options, a seeded shuffle, letter extraction.

The gold is a letter. The options shown, in the order shown, are kept in `Example.meta["options"]`, so a
prediction file says exactly what the model saw.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from latentrl.tasks.answers import last_boxed, strip_think
from latentrl.tasks.registry import Example, Score

LETTERS = "ABCDEFGHIJ"
ANSWER_FORMAT = "Reason step by step, then put the letter of the correct option (one letter only) in \\boxed{}."

_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_BOXED_LETTER = re.compile(r"\(?([A-Za-z])\)?(?:[.:)]\s*.*)?", re.DOTALL)  # 'B', 'b', '(B)', 'B.', 'B) the text'
# After "answer is" / "Answer:" / "the correct option is": a capital letter, a letter in parentheses, or a
# lowercase letter that ends the phrase ('Answer: c', 'the answer is b.'), so the article in 'the answer is a
# bit unclear' is no answer. "option" and "choice" need a qualifier (correct, right, best, final): "one option
# is A" in prose states nothing.
_ANSWER_IS = re.compile(
    r"(?i:answer|(?:correct|right|best|final)\s+(?:option|choice))\s*(?:is|:)\s*:?\s*(?:(?i:option|choice)\s*)?[*_$]*"
    r"(?:\(([A-Za-z])\)|\(?([A-Z])\b|([a-z])(?=[*_$]*(?:[.,;:!)]|\s*$)))",
    re.MULTILINE,
)
_PAREN = re.compile(r"\(([A-Z])\)")
# A letter naming an option by its text: 'E) hypothyroidism', 'E. hypothyroidism', '(e) hypothyroidism'.
_NAMED = re.compile(r"(?<![A-Za-z0-9])\(?([A-Za-z])[.)]\s+")


def render(question: str, options: Sequence[str]) -> str:
    """The question followed by one 'A. text' line per option."""
    lines = [f"{LETTERS[i]}. {text}" for i, text in enumerate(options)]
    return question.strip() + "\n\n" + "\n".join(lines)


def shuffled(options: Sequence[str], correct: int, key: str) -> tuple[list[str], int]:
    """`options` in a random order fixed by `key`, and the new index of the correct one.

    A string seed goes through SHA-512 in `random.Random`, so the order is the same on every run, machine
    and Python process (it does not depend on PYTHONHASHSEED).
    """
    order = list(range(len(options)))
    random.Random(key).shuffle(order)
    return [options[i] for i in order], order.index(correct)


def example(id: str, question: str, options: Sequence[str], correct: int) -> Example:
    """An Example whose gold is the letter of option `correct` (options in the order given)."""
    if not 0 <= correct < len(options) <= len(LETTERS):
        raise ValueError(f"example {id}: correct option {correct} out of range for {len(options)} options")
    options = [str(o).strip() for o in options]
    return Example(id, render(question, options), LETTERS[correct], {"options": options})


def letters_of(ex: Example) -> str:
    """The letters that name an option of `ex` (four when the options are embedded in the question)."""
    options = ex.meta.get("options")
    return LETTERS[: len(options)] if options else LETTERS[:4]


def boxed_letter(content: str | None, letters: str) -> str | None:
    """'B', 'b', '(B)', '\\text{B}', 'B. text' -> 'B', when B names an option; else None."""
    if content is None:
        return None
    m = _BOXED_LETTER.fullmatch(_WRAPPER.sub(r"\1", content).replace("$", "").strip())
    letter = m.group(1).upper() if m else None
    return letter if letter and letter in letters else None


def extract_choice(
    text: str, letters: str = LETTERS[:4], options: Sequence[str] | None = None
) -> tuple[str | None, str | None]:
    """(strict, flexible) letters: strict is the last boxed letter (either case); flexible falls back to the
    last 'answer is X' / 'Answer: x' / 'the correct option is X', then to the one option named by its letter
    and its text ('E) hypothyroidism', given `options`), then to the last '(X)'. Thinking is dropped as in
    `strip_think`."""
    body = strip_think(text)
    strict = boxed_letter(last_boxed(body), letters)
    if strict is not None:
        return strict, strict
    found = [letter for m in _ANSWER_IS.finditer(body) if (letter := _letter(m)) in letters]
    found = found or named_options(body, letters, options or ())
    found = found or [letter for m in _PAREN.finditer(body) if (letter := _letter(m)) in letters]
    return None, (found[-1] if found else None)


def named_options(body: str, letters: str, options: Sequence[str]) -> list[str]:
    """The letter of the one option `body` names as a letter followed by that option's text ('E) text',
    'E. text', '(E) text'), as a one-item list; empty when none is, or when several are (an echo of the
    option list names them all and states no answer). Prose such as 'a) first, we ...' names no option:
    the words after the letter must be the option's own text."""
    flat, texts = _flat(body), [_flat(o).rstrip(".") for o in options]
    named = set()
    for m in _NAMED.finditer(flat):
        letter = m.group(1).upper()
        i = LETTERS.find(letter)
        if letter in letters and i < len(texts) and texts[i] and flat[m.end() :].startswith(texts[i]):
            named.add(letter)
    return list(named) if len(named) == 1 else []


def _flat(text: str) -> str:
    """Lowercase, markdown emphasis dropped, whitespace runs as one space: how an option's text is matched."""
    return " ".join(text.replace("*", "").replace("_", " ").split()).lower()


def _letter(m: re.Match) -> str:
    """The letter a match found, as a capital (one of its groups matched)."""
    return next(g for g in m.groups() if g).upper()


def score(text: str, ex: Example) -> Score:
    strict, flexible = extract_choice(text, letters_of(ex), ex.meta.get("options"))
    return Score(strict, flexible, strict == ex.gold, flexible == ex.gold)
