"""The chains task: disjoint train/test splits, answers that follow from the text, balanced levels."""

import re

import pytest

from latentrl.rl.data import train_dataset
from latentrl.tasks import get_task
from latentrl.tasks.chains import generate, split_of


def solve(question: str) -> int:
    """An independent reading of the problem text, sentence by sentence."""
    value = int(re.match(r"Start with (\d+)\.", question).group(1))
    for verb, k in re.findall(r"(Add|Subtract|Multiply by) (\d+)\.", question):
        value = {"Add": value + int(k), "Subtract": value - int(k), "Multiply by": value * int(k)}[verb]
        assert value >= 0
    return value


def test_no_test_problem_occurs_in_training():
    test = {r["question"] for r in generate(300, "test")}
    train = train_dataset("chains", None, 1200, seed=3)["prompt"]
    assert len(test) == 300 and len(set(train)) == 1200
    assert not test & set(train)
    assert {split_of(q) for q in test} == {"test"} and {split_of(q) for q in train[:500]} == {"train"}


def test_answers_follow_from_the_text_and_levels_are_balanced():
    examples = get_task("chains").load("auto", None)
    assert [int(e.gold) for e in examples] == [solve(e.question) for e in examples]
    levels = [e.meta["level"] for e in examples]
    assert {lv: levels.count(lv) for lv in (1, 2, 3)} == {1: 100, 2: 100, 3: 100}
    assert all(e.question.count(".") - 1 == e.meta["level"] for e in examples)
    assert len({e.question for e in examples}) == len(examples) == 300


def test_scored_like_gsm8k():
    task = get_task("chains")
    ex = task.load("auto", None)[0]
    assert task.score(f"so \\boxed{{{ex.gold}}}", ex).correct
    assert not task.score(f"so \\boxed{{{int(ex.gold) + 1}}}", ex).correct


def test_asking_for_more_problems_than_a_level_has_is_a_clear_error():
    with pytest.raises(ValueError, match="only .* distinct level-1 train problems exist"):
        generate(3000, "train")
