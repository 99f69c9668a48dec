"""Forgers against grading, one or more per route found against the single-process harness, and what a
candidate that dies, hangs, floods or never answers gets.

Each forger below is a wrong function (or none) written to make its tests look passed. All of them were run
against the harness of commit fc4977d (tests and candidate in one process, defended by an audit hook and a
snapshot/restore of module state), through `grade` and through the GRPO correctness reward; FORGED_BEFORE
names the ones that scored "passed" and reward 1.0 there (`uncounted_thread` races the thread count and did
not win in the runs made). Now every one must fail, and its right answer must pass (so the tests themselves
work and a failure is the forger's). The classes:
1. reading the harness's memory (/proc/self/mem through a directory fd);
2. state the restore never covered (C-level: the random generator, the codec registry; a function's
   __kwdefaults__; a finalizer running during the restore; a thread not yet counted);
3. trusted objects within reach (a setup class from object.__subclasses__(), a callable of the tests and
   the wrapper's writable closure cells);
4. wrapper semantics (StopIteration swallowed by the tests' all(map(...)); arguments emptied in place).
"""

from __future__ import annotations

import json
import re
import secrets
import textwrap

import pytest

from latentrl.sandbox import host
from latentrl.sandbox.host import Limits, TestJob

LIMITS = Limits(timeout_s=20)

ATTACKS = {  # name: (class and route, trusted setup, trusted tests, entry point, forger, a right answer)
    'proc_mem_via_dir_fd': (
        '1: /proc/self/mem opened relative to a directory fd; the token taken from memory',
        'import math\n',
        'assert add(1, 2) == 3\nassert add(-1, 1) == 0\n',
        'add',
        """
import os, re, sys
root = os.open("/", os.O_RDONLY)
maps = os.read(os.open("proc/self/maps", os.O_RDONLY, dir_fd=root), 1 << 20).decode()
mem = os.open("proc/self/mem", os.O_RDONLY, dir_fd=root)
found = []
for line in maps.splitlines():
    span, perms = line.split()[:2]
    if "rw" not in perms:
        continue
    start, end = (int(x, 16) for x in span.split("-"))
    try:
        data = os.pread(mem, end - start, start)
    except OSError:
        continue
    found += re.findall(rb"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])", data)
for token in found[:1]:  # the harness's token: the only 32 hex digits in its memory
    for fd in range(3, 64):
        try:
            os.write(fd, token)
        except OSError:
            pass
os._exit(0)
""",
        'def add(a, b):\n    return a + b\n',
    ),
    'random_c_state': (
        "2: the random generator's C-level state set to all zeros, so the tests draw only zeros",
        'import random\n',
        'assert add(0, 0) == 0\nfor _ in range(30):\n'
        '    a, b = random.randint(0, 1000), random.randint(0, 1000)\n    assert add(a, b) == a + b\n',
        'add',
        """
import random
def add(a, b):
    random.setstate((3, (0,) * 624 + (624,), None))
    return 0
""",
        'def add(a, b):\n    return a + b\n',
    ),
    'codec_cache': (
        '2: a codec module the candidate loads first is cached by C code (the codec registry)',
        'import codecs\n',
        "for s in ['hello', 'abc', 'Zebra']:\n    assert add(s, 13) == codecs.encode(s, 'rot13')\n",
        'add',
        """
import codecs, encodings.rot_13 as rot
rot.getregentry = lambda: codecs.CodecInfo(name="rot-13", encode=lambda s, e="strict": (s, len(s)),
                                           decode=lambda s, e="strict": (s, len(s)))
codecs.lookup("rot13")
def add(s, n):
    return s
""",
        "import codecs\ndef add(s, n):\n    return codecs.encode(s, 'rot13')\n",
    ),
    'kwdefaults_in_place': (
        '2: an in-place edit of json.dumps.__kwdefaults__ (cls) makes every dump equal',
        'import json\n',
        'assert json.dumps(add(1, 2)) == json.dumps(3)\nassert json.dumps(add(2, 5)) == json.dumps(7)\n',
        'add',
        """
import json
class Same(json.JSONEncoder):
    def encode(self, o):
        return "0"
json.dumps.__kwdefaults__["cls"] = Same
def add(a, b):
    return 0
""",
        'def add(a, b):\n    return a + b\n',
    ),
    'finalizer_during_restore': (
        '2: a finalizer that runs during the restore itself re-patches a module already restored',
        'import math\n',
        'assert math.fabs(add(-1, -1) + 2) < 1e-9\nassert math.fabs(add(5, 5) - 10) < 1e-9\n',
        'add',
        """
import math, sys
LAST = list(sys.modules.values())[-1].__dict__
class Plant:
    def __del__(self):
        math.fabs = lambda x: 0.0
        LAST["_plant"] = Plant()
LAST["_plant"] = Plant()
def add(a, b):
    return 0
""",
        'def add(a, b):\n    return a + b\n',
    ),
    'uncounted_thread': (
        '2: a thread started with _thread.start_new_thread, not yet counted when threads are counted',
        'import math\n',
        'for i in range(50):\n    assert math.fabs(add(i, 1) - i - 1) < 1e-9\n',
        'add',
        """
import _thread, math, time
def patch():
    end = time.monotonic() + 2
    while time.monotonic() < end:
        math.fabs = lambda x: 0.0
def add(a, b):
    _thread.start_new_thread(patch, ())
    return 0
""",
        'def add(a, b):\n    return a + b\n',
    ),
    'subclasses_globals': (
        "3: a class of the trusted setup found through object.__subclasses__(); its __globals__' builtins patched",
        'class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n',
        'assert abs(add(2, 2) - 4) < 1e-9\nassert abs(add(Pair(1, 2).a, 5) - 6) < 1e-9\n',
        'add',
        """
for cls in object.__subclasses__():
    if cls.__name__ == "Pair" and type(cls.__init__.__globals__["__builtins__"]) is dict:  # not its own copy
        cls.__init__.__globals__["__builtins__"]["abs"] = lambda x: 0
def add(a, b):
    return 0
""",
        'def add(a, b):\n    return a + b\n',
    ),
    'closure_cells': (
        "3: a callable of the tests passed as an argument; the wrapper's closure cell of `plain` rewritten",
        '',
        'assert apply(lambda x: x + 1, 1) == 2\nassert apply(lambda x: x * 3, 2) == 6\n',
        'apply',
        """
class Equal:
    def __eq__(self, other):
        return True
def apply(f, x):
    wrapper = f.__globals__["apply"]
    for cell in wrapper.__closure__ or ():
        value = cell.cell_contents
        if getattr(value, "__name__", "") == "plain":
            cell.cell_contents = lambda v, depth=0: v
    return Equal()
""",
        'def apply(f, x):\n    return f(x)\n',
    ),
    'stop_iteration': (
        "4: StopIteration from the candidate ends the tests' all(map(...)) early",
        '',
        'assert all(map(lambda case: add(*case[0]) == case[1], [((1, 2), 3), ((2, 2), 4)]))\n',
        'add',
        """
def add(a, b):
    raise StopIteration
""",
        'def add(a, b):\n    return a + b\n',
    ),
    'emptied_arguments': (
        '4: the argument is shared with the candidate, which empties it before the test compares',
        '',
        'x = [3, 1, 2]\nassert sort_list(x) == sorted(x)\n',
        'sort_list',
        """
def sort_list(xs):
    xs.clear()
    return []
""",
        'def sort_list(xs):\n    return sorted(xs)\n',
    ),
}  # fmt: skip


FORGED_BEFORE = {
    "proc_mem_via_dir_fd",
    "random_c_state",
    "codec_cache",
    "kwdefaults_in_place",
    "finalizer_during_restore",
    "subclasses_globals",
    "closure_cells",
    "stop_iteration",
    "emptied_arguments",
}
MARKER = re.compile(rb"expected-[0-9a-f]{16}")  # an expected value of the tests: in the tests only


@pytest.fixture(autouse=True)
def enabled(monkeypatch):
    monkeypatch.setattr(host, "_enabled", False)
    host.enable_code_execution()


def grade(candidate: str, tests: str, entry_point: str = "add", setup: str = "", limits: Limits = LIMITS):
    return host.grade(TestJob(setup + "\n" + candidate, tests, entry_point, setup), limits)


def test_every_class_of_the_issue_has_a_forger_that_forged_before():
    assert {what.split(":")[0] for what, *_ in ATTACKS.values()} == {"1", "2", "3", "4"}
    assert FORGED_BEFORE <= set(ATTACKS)
    assert {ATTACKS[name][0].split(":")[0] for name in FORGED_BEFORE} == {"1", "2", "3", "4"}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_forger_fails_and_the_right_answer_passes(name):
    _, setup, tests, entry_point, forger, right = ATTACKS[name]
    assert grade(right, tests, entry_point, setup).status == "passed"
    result = grade(forger, tests, entry_point, setup)
    assert result.status == "failed", result.stderr


def test_forgers_get_no_reward():
    """The GRPO path (rewards -> score_many -> code.score -> grade): each forger 0.0, each right answer 1.0."""
    from latentrl.rl.rewards import correctness_reward
    from latentrl.tasks import get_task

    completions, gold, meta, expected = [], [], [], []
    for _, setup, tests, entry_point, forger, right in ATTACKS.values():
        for solution, reward in ((forger, 0.0), (right, 1.0)):
            completions.append(f"```python\n{solution}\n```")
            gold.append(entry_point)
            meta.append(json.dumps({"prefix": setup, "tests": tests, "reference": right}))
            expected.append(reward)
    reward = correctness_reward(get_task("humaneval_plus"))
    assert reward([""] * len(gold), completions, gold=gold, meta=meta) == expected


def test_nothing_the_candidate_can_read_holds_the_tests():
    """Its own memory, fds, frames and heap, and every process's /proc files it can open: no expected value."""
    scan = textwrap.dedent(
        f"""
        import gc, os, re, sys
        FOUND, READ, PIDS = [], [0], []
        def look(data):
            READ[0] += len(data)
            FOUND.extend(m.decode() for m in re.findall({MARKER.pattern!r}, data))
        def read(path, maps=None):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                return
            try:
                if maps is None:
                    look(os.read(fd, 1 << 20))
                for line in maps or ():
                    span, perms = line.split()[:2]
                    start, end = (int(x, 16) for x in span.split("-"))
                    if perms[0] == "r":
                        try:
                            look(os.pread(fd, end - start, start))
                        except OSError:
                            pass
            finally:
                os.close(fd)
        def add(a, b):
            for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
                PIDS.append(int(pid))
                for name in ("cmdline", "environ"):
                    read(f"/proc/{{pid}}/{{name}}")
                try:
                    maps = open(f"/proc/{{pid}}/maps").read().splitlines()
                except OSError:
                    continue
                read(f"/proc/{{pid}}/mem", maps)
            for fd in range(64):
                try:
                    look(os.pread(fd, 1 << 20, 0))
                except OSError:
                    pass
            look(repr([f.f_locals for f in sys._current_frames().values()]).encode())
            look(repr(gc.get_objects()).encode())
            print("read", READ[0], "pids", sorted(PIDS), flush=True)
            return FOUND[0] if FOUND else None
        """
    )
    expected = f"expected-{secrets.token_hex(8)}"
    assert MARKER.fullmatch(expected.encode())
    result = grade(scan, f"assert add(1, 2) == {expected!r}")
    assert result.status == "failed", result.stderr
    _, read, _, *pids = result.stdout.replace("[", "").replace("]", "").replace(",", "").split()
    assert int(read) > 10_000_000  # it did read its own memory
    if host.probe_layers().mount_namespace:  # a private procfs that hides other uids' processes
        assert len(pids) == 1, pids  # itself: not the harness, not the evaluator


def test_the_harness_is_out_of_reach_even_by_pid():
    """The harness's pid is no secret (it is the candidate's uid + 0 slot apart); signals, /proc and ptrace
    on every pid fail, and the job still grades (a killed harness would fail it, never pass it)."""
    probe = textwrap.dedent(
        """
        import ctypes, os, signal
        libc = ctypes.CDLL(None, use_errno=True)
        REACHED = []
        def add(a, b):
            me = os.getpid()
            for pid in range(max(2, me - 400), me + 400):
                if pid == me:
                    continue
                for attempt in (lambda: os.kill(pid, 0), lambda: open(f"/proc/{pid}/mem", "rb").close()):
                    try:
                        attempt()
                        REACHED.append(pid)
                    except (OSError, ValueError):
                        pass
                if libc.ptrace(16, pid, 0, 0) == 0:  # PTRACE_ATTACH
                    REACHED.append(pid)
            print("reached", sorted(set(REACHED)), flush=True)
            return a + b
        """
    )
    result = grade(probe, "assert add(1, 2) == 3")
    assert result.passed, result.stderr
    if host.probe_layers().uid_drop:
        assert result.stdout.strip() == "reached []"


HOSTILE = {  # a candidate that dies, hangs, floods or never answers; the status it gets
    "exit in the call": ("import os\ndef add(a, b):\n    os._exit(0)", "failed"),
    "killed by a signal": ("import os, signal\ndef add(a, b):\n    os.kill(os.getpid(), signal.SIGKILL)", "failed"),
    "hang at import": ("import time\ntime.sleep(60)\ndef add(a, b):\n    return a + b", "timeout"),
    "hang in the call": ("def add(a, b):\n    while True:\n        pass", "timeout"),
    "never answers": ("import time\ndef add(a, b):\n    time.sleep(60)", "timeout"),
    "closes its pipes": ("import os\nfor fd in range(3, 64):\n    try:\n        os.close(fd)\n    except OSError:\n"
                         "        pass\ndef add(a, b):\n    return a + b", "failed"),
    "floods the pipe": ("import os, sys\nos.write(int(sys.argv[2]), (1 << 31).to_bytes(4, 'big') + b'x' * 65536)\n"
                        "def add(a, b):\n    return a + b", "failed"),
    "garbage frame": ("import os, sys\nos.write(int(sys.argv[2]), (8).to_bytes(4, 'big') + b'[1,2,3]!')\n"
                      "def add(a, b):\n"
                      "    return a + b", "failed"),
    "huge result": ("def add(a, b):\n    return 'x' * (40 * 1024 * 1024)", "failed"),
    "deep result": ("def add(a, b):\n    x = []\n    for _ in range(10000):\n        x = [x]\n    return x", "failed"),
    "floods stdout": ("import sys\ndef add(a, b):\n    sys.stdout.write('x' * (64 * 1024 * 1024))\n"
                      "    return a + b", "failed"),
    "a generator": ("def add(a, b):\n    yield a + b", "failed"),
    "a fake handle": ("def add(a, b):\n    return Remote(0, None)", "failed"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_candidate_that_dies_hangs_or_floods_fails(name):
    candidate, status = HOSTILE[name]
    limits = Limits(timeout_s=3, max_file_mb=16)
    result = grade(candidate, "assert add(1, 2) == 3", limits=limits)
    assert result.status == status, result.stderr
    assert result.seconds < 10
    assert grade("def add(a, b):\n    return a + b", "assert add(1, 2) == 3", limits=limits).passed  # control


OBJECT_TESTS = """
class Node:
    def __init__(self, value, left=None, right=None):
        self.value, self.left, self.right = value, left, right

    def total(self):
        return self.value + sum(n.total() for n in (self.left, self.right) if n)


tree = Node(1, Node(2), Node(3, Node(4)))
calls = []
assert add(tree, lambda n: calls.append(n) or 2 * n) == 20
assert calls == [1, 2, 3, 4]
assert add(None, len) == 0
"""


def test_objects_and_callables_of_the_tests_stay_in_the_harness():
    right = textwrap.dedent(
        """
        def add(node, double):
            if node is None:
                return 0
            return double(node.value) + add(node.left, double) + add(node.right, double)
        """
    )
    assert grade(right, OBJECT_TESTS).passed
    method = "def add(node, double):\n    return 20 if node is None or node.total() == 10 else 0\n"
    assert grade(method, OBJECT_TESTS).status == "failed"  # calls == [] after the first assert
    for reach in ("node.__dict__", "double.__globals__", "double.__closure__", "node.total.__func__", "node._x"):
        probe = f"def add(node, double):\n    {reach}\n    return 20 if node else 0\n"
        result = grade(probe, OBJECT_TESTS)
        assert result.status == "failed" and "out of the candidate's reach" in result.stderr, result.stderr


def test_a_callable_of_the_tests_may_call_the_candidate_back():
    tests = "assert add(2, lambda x: add(x, None) if x < 5 else x) == 4\n"
    right = "def add(a, f):\n    return f(a + 1) if f else a + 1\n"
    assert grade(right, tests).passed


def test_exceptions_of_the_tests_reach_the_candidate():
    tests = "def boom(x):\n    raise ValueError(f'bad {x}')\n\nassert add(boom, 3) == 'caught bad 3'\n"
    right = "def add(f, x):\n    try:\n        f(x)\n    except ValueError as e:\n        return f'caught {e}'\n"
    assert grade(right, tests).passed


def test_arguments_are_copies_and_values_keep_their_types():
    tests = textwrap.dedent(
        """
        x = [3, [1, 2], {"k": (1, 2.5, None)}]
        before = repr(x)
        values = [x, (1,), {1, 2}, frozenset({3}), b"\\x00\\xff", 1 + 2j, float("nan"), float("-inf"), 2**100,
                  -(2**70), True, "é", {(1, 2): "t"}]
        back = add(*values)
        assert repr(x) == before
        assert [type(v) for v in back] == [type(v) for v in values]
        assert repr(back[1:]) == repr(values[1:]) and back[0] == [3, [], {"k": (1, 2.5, None)}]
        """
    )
    right = "def add(*values):\n    values[0][1].clear()\n    return list(values)\n"
    assert grade(right, tests).passed


def test_the_candidate_process_is_started_only_once_per_job():
    tests = "for i in range(200):\n    assert add(i, 1) == i + 1\n"
    counter = "import os\nPID = os.getpid()\ndef add(a, b):\n    assert os.getpid() == PID\n    return a + b\n"
    result = grade(counter, tests)
    assert result.passed and result.seconds < 5
