import pytest

from latentrl.tasks import Example
from latentrl.tasks.answers import extract_math, last_boxed, normalize_number, numbers_equal, strip_think
from latentrl.tasks.gsm8k import gold_of, score


@pytest.mark.parametrize(
    "text,boxed",
    [
        ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("\\boxed{a{b{c}}d}", "a{b{c}}d"),
        ("first \\boxed{3} then \\boxed{4}", "4"),
        ("\\boxed 5 apples", "5"),
        ("\\fbox{7}", "7"),
        ("\\boxed{unclosed", None),
        ("no box at all", None),
    ],
)
def test_last_boxed(text, boxed):
    assert last_boxed(text) == boxed


@pytest.mark.parametrize(
    "raw,value",
    [
        ("1,234", 1234.0),
        ("$18.00", 18.0),
        ("18.", 18.0),
        ("-3.5", -3.5),
        ("\\frac{3}{4}", 0.75),
        ("50\\%", 50.0),
        ("\\text{12} dollars", 12.0),
        ("none", None),
    ],
)
def test_normalize_number(raw, value):
    assert normalize_number(raw) == value


def test_numeric_comparison_with_tolerance():
    assert numbers_equal("18.00", "18")
    assert numbers_equal("$1,234", "1234")
    assert not numbers_equal("18.5", "18")
    assert not numbers_equal(None, "18")


def test_think_blocks():
    assert strip_think("<think>\\boxed{1}</think> answer \\boxed{2}") == " answer \\boxed{2}"
    assert extract_math("<think>the answer is \\boxed{3}") == (None, None)  # unclosed: no answer


def test_strict_and_flexible_readings():
    assert extract_math("I think \\boxed{1,000}") == ("1,000", "1,000")
    assert extract_math("so the answer is 42.") == (None, "42.")
    assert extract_math("we get 3 then 7") == (None, "7")
    s = score("so the answer is 42.", Example("0", "q", "42"))
    assert s.correct and not s.correct_strict and s.strict is None
    s = score("garbage", Example("0", "q", "42"))
    assert not s.correct and s.flexible is None


def test_gsm8k_gold_in_both_schemas():
    assert gold_of({"question": "q", "answer": "work\n#### 1,200"}) == "1200"
    assert gold_of({"question": "q", "short_answer": "18"}) == "18"
