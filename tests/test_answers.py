import pytest

from latentrl.tasks import Example, choice, get_task
from latentrl.tasks.answers import extract_math, last_boxed, math_equal, normalize_number, strip_think
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
        ("\\boxed{}", None),  # the instruction's placeholder, echoed
        ("\\boxed{3} then \\boxed{ }", "3"),  # an empty box does not hide the answer before it
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
        ("\u22123", -3.0),  # Unicode minus sign
        ("\u20133", -3.0),  # en dash used as minus
        ("1.2 \\times 10^{4}", 12000.0),
        ("1.2e4", 12000.0),
        ("3 \\cdot 10^{-2}", 0.03),
        ("18 - 3 = 15", 15.0),  # what it concludes with
        ("18 apples", 18.0),
        ("2 + 3", None),  # an expression, not one number
        ("2x", None),
        ("1e999", None),  # not a finite float
    ],
)
def test_normalize_number(raw, value):
    assert normalize_number(raw) == value


def test_numeric_comparison_with_tolerance():
    assert math_equal("18.00", "18")
    assert math_equal("$1,234", "1234")
    assert not math_equal("18.5", "18")
    assert not math_equal(None, "18")
    assert not math_equal("1000001", "1000000")  # whole numbers compare exactly, not within 1e-6
    assert math_equal("0.3333333333", "\\frac{1}{3}")


# Each case class once: (output text, gold, correct under the flexible reading). Every numeric task reads
# it by the same rule, so GSM8K, MATH-500 and AIME must agree on each.
NUMERIC_CASES = [
    ("The answer is \u22123.", "3", False),  # Unicode minus is a minus
    ("The answer is \u22123.", "-3", True),
    ("So the answer is \u20133.", "3", False),  # en dash as minus
    ("So the answer is 18 - 3 = 15.", "15", True),  # the concluded value, not the first number
    ("So the answer is 18 - 3 = 15.", "18", False),
    ("Answer: 7. Check: 3 + 4 = 7, then 2 = 2", "7", True),  # the sentence ends at its full stop
    ("\\boxed{1.2 \\times 10^{4}}", "12000", True),  # scientific notation, not the mantissa
    ("\\boxed{1.2e4}", "12000", True),
    ("\\boxed{1.2e4}", "1", False),
    ("<think>the answer is \\boxed{5}</think> so \\boxed{7}", "7", True),
    ("so the answer is 5</think>\nThe total is 7", "7", True),  # lone </think>: the thinking ends there
    ("so the answer is 5</think>\nThe total is 7", "5", False),
    ("\\boxed{18 apples}", "18", True),
    ("\\boxed{\\dfrac{48}{2}}", "24", True),
    ("\\boxed{24/1}", "24", True),
]


@pytest.mark.parametrize("task", ["gsm8k", "math500", "aime2024"])
@pytest.mark.parametrize("text,gold,correct", NUMERIC_CASES)
def test_numeric_tasks_agree_on_every_case(task, text, gold, correct):
    if task == "aime2024" and not (gold.isdigit() and int(gold) <= 999):
        pytest.skip("AIME answers are integers 0..999")
    assert get_task(task).score(text, Example("0", "q", gold)).correct is correct


@pytest.mark.parametrize(
    "text,expected",
    [
        ("\\boxed{b}", ("B", "B")),  # a lowercase boxed letter
        ("\\boxed{\\text{c}}", ("C", "C")),
        ("Answer: c", (None, "C")),
        ("so the answer is d.", (None, "D")),
        ("The answer is (b) because", (None, "B")),
        ("the answer is a bit unclear, (C) maybe", (None, "C")),  # the article 'a' is not an answer
        ("reasoning</think> Answer: B", (None, "B")),
        ("Answer: A</think> so (B)", (None, "B")),  # a lone </think> ends the thinking
    ],
)
def test_choice_edge_cases(text, expected):
    assert choice.extract_choice(text, "ABCD") == expected


def test_think_blocks():
    assert strip_think("<think>\\boxed{1}</think> answer \\boxed{2}") == " answer \\boxed{2}"
    assert extract_math("<think>the answer is \\boxed{3}") == (None, None)  # unclosed: no answer
    assert strip_think("thinking \\boxed{1}</think> answer \\boxed{2}") == " answer \\boxed{2}"  # lone close
    assert strip_think("a</think> b <think> c") == " b "


def test_strict_and_flexible_readings():
    assert extract_math("I think \\boxed{1,000}") == ("1,000", "1,000")
    assert extract_math("so the answer is 42.") == (None, "42")
    assert extract_math("so the answer is 18 - 3 = 15.") == (None, "15")
    assert extract_math("we get 3 then 7") == (None, "7")
    # A policy trained with a format reward wrote this: the empty box is no answer; the sentence is.
    assert extract_math("72 / \\boxed{} = 21\n\nThe final answer is 21.") == (None, "21")
    # A GRPO policy wrote this: the last "answer is" sentence is a verdict on the answer, not an answer.
    checked = "28 * 3 = 74\n\nThe final answer is 74.\n\nThe reasoning is correct, and the final answer is correct."
    assert extract_math(checked) == (None, "74")
    assert extract_math("The answer is not correct.") == (None, None)
    s = score("so the answer is 42.", Example("0", "q", "42"))
    assert s.correct and not s.correct_strict and s.strict is None
    s = score("garbage", Example("0", "q", "42"))
    assert not s.correct and s.flexible is None


def test_gsm8k_gold_in_both_schemas():
    assert gold_of({"question": "q", "answer": "work\n#### 1,200"}) == "1200"
    assert gold_of({"question": "q", "short_answer": "18"}) == "18"


MEDQA_OPTIONS = ["hyperthyroidism", "Addison disease", "Cushing syndrome", "diabetes insipidus", "hypothyroidism"]


@pytest.mark.parametrize(
    "text,expected",
    [
        # The class: a letter, then ')' or '.', then that option's own text.
        ("The correct option is E) hypothyroidism.", "E"),  # read as no answer before
        ("So it must be E) Hypothyroidism, given the TSH.", "E"),  # the option's text names it: case aside
        ("Most likely: **C. Cushing syndrome**", "C"),
        ("That leaves (b) Addison   disease", "B"),
        ("Answer: (C) Cushing syndrome", "C"),  # a stated answer
        ("The best choice is d", "D"),
        ("The correct option is E) hypothyroidism, not A) hyperthyroidism.", "E"),  # stated beats named
        # No answer: prose with a letter and ')' whose words are not that option's text ...
        ("We check two things: a) the TSH level, b) the free T4.", None),
        ("Considering a) hypothyroidism is tempting", None),  # A's text is hyperthyroidism, not this
        # ... an echo of the option list, naming every option ...
        ("A) hyperthyroidism B) Addison disease C) Cushing syndrome", None),
        # ... or 'option' without a qualifier that states it.
        ("One option is A, another is B, I am unsure.", None),
    ],
)
def test_choice_letter_with_its_option_text(text, expected):
    assert choice.extract_choice(text, "ABCDE", MEDQA_OPTIONS)[1] == expected


def test_choice_score_reads_the_options_shown():
    said = "The correct option is E) hypothyroidism."
    assert choice.score(said, choice.example("q", "Which?", MEDQA_OPTIONS, 4)).correct
    assert not choice.score(said, choice.example("q", "Which?", MEDQA_OPTIONS, 0)).correct
