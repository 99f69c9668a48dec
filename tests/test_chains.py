"""The chains task: disjoint train/test splits, answers that follow from the text, balanced levels."""

import re

from latentrl.rl.data import train_dataset
from latentrl.tasks import get_task
from latentrl.tasks.chains import generate, split_of


def solve(question: str) -> int:
    """An independent reading of the problem text, sentence by sentence."""
    value = int(re.match(r"\w+ has (\d+)", question).group(1))
    for sentence in question.split(". ")[1:]:
        k = re.search(r"(\d+)", sentence)
        if "more" in sentence:
            value += int(k.group(1))
        elif "away" in sentence:
            value -= int(k.group(1))
        elif "times as many" in sentence:
            value *= int(k.group(1))
        elif "shares" in sentence:
            value //= int(k.group(1))
    return value


def test_no_test_problem_occurs_in_training():
    test = {r["question"] for r in generate(500, "test")}
    train = train_dataset("chains", None, 5000, seed=3)["prompt"]
    assert len(test) == 500 and len(set(train)) == 5000
    assert not test & set(train)
    assert {split_of(q) for q in test} == {"test"} and {split_of(q) for q in train[:500]} == {"train"}


def test_answers_follow_from_the_text_and_levels_are_balanced():
    examples = get_task("chains").load("auto", None)
    assert [int(e.gold) for e in examples] == [solve(e.question) for e in examples]
    levels = [e.meta["level"] for e in examples]
    assert {lv: levels.count(lv) for lv in (2, 3, 4)} == {2: 167, 3: 167, 4: 166}
    assert all(e.question.count("Then") == e.meta["level"] for e in examples)
    assert len({e.question for e in examples}) == len(examples) == 500


def test_scored_like_gsm8k():
    task = get_task("chains")
    ex = task.load("auto", None)[0]
    assert task.score(f"so \\boxed{{{ex.gold}}}", ex).correct
    assert not task.score(f"so \\boxed{{{int(ex.gold) + 1}}}", ex).correct
