"""The sandbox: the opt-in switch, verdicts, limits, and hostile programs that must leave the evaluator unharmed.

Hostile programs run in two modes: "guarded" (the public API: OS layers plus the in-process guard) and
"os_layers" (guard off, so the OS layers alone must contain them; needs the uid drop, i.e. root). The guard
is also tested on its own, without any OS layer. After every hostile run the `evaluator` fixture checks
that the test process's files, environment, mounts and a bystander process are intact and that no
sandbox process is left.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from latentrl.sandbox import host as sandbox
from latentrl.sandbox.host import CodeExecutionNotAllowed, ExecResult, Limits, SandboxError, TestJob

LAYERS = sandbox.probe_layers()
ROOT = os.geteuid() == 0
SECRET = "LATENTRL_SANDBOX_TEST_SECRET"
DEFAULT = Limits()
needs_uid_drop = pytest.mark.skipif(not LAYERS.uid_drop, reason="needs the sandbox uid drop (root)")


def program(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


def run_program(source: str, limits: Limits = DEFAULT, *, guard: bool = True) -> ExecResult:
    """A whole program in the sandbox, its exit status read as "passed": fine for these tests' own trusted
    programs (they assert, then exit), never a way to grade a candidate (`grade` is)."""
    result, _ = sandbox.run_script(source, limits, guard=guard)
    code = result.returncode
    status = "timeout" if result.timed_out else "passed" if code == 0 else "killed" if code < 0 else "failed"
    return ExecResult(status, code, result.stdout, result.stderr, result.seconds)


def run_programs(sources: list[str], workers: int = 2) -> list[ExecResult]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run_program, sources))


def stray_sandbox_processes() -> list[int]:
    """Live processes of this test process's sandboxes: one of its sandbox uids, or (without the uid drop)
    its sandbox directory in the command line (launcher) or environment (program). Other processes may be
    running sandboxes at the same time; theirs are not counted."""
    first_uid = sandbox._UID_BASE + os.getpid() * sandbox._UID_SLOTS
    marker = f"latentrl-sandbox-{os.getpid()}-".encode()
    strays = []
    for pid, uid, state in sandbox._processes():
        if state == "Z" or pid == os.getpid():
            continue
        if first_uid <= uid < first_uid + sandbox._UID_SLOTS or any(marker in text for text in _proc_texts(pid)):
            strays.append(pid)
    return strays


def _proc_texts(pid: int) -> list[bytes]:
    texts = []
    for name in ("cmdline", "environ"):
        try:
            texts.append(Path(f"/proc/{pid}/{name}").read_bytes())
        except OSError:
            pass
    return texts


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # pytest rewrites that one


@pytest.fixture(autouse=True)
def code_execution_off(monkeypatch):
    """Every test starts with the switch off and leaves it as it found it."""
    monkeypatch.setattr(sandbox, "_enabled", False)


@pytest.fixture
def enabled():
    sandbox.enable_code_execution()


@pytest.fixture(params=["guarded", "os_layers"])
def run(request, enabled):
    """run(source, limits) in one of the two modes; `run.guarded` says which."""
    if request.param == "guarded":

        def runner(source: str, limits: Limits = DEFAULT) -> ExecResult:
            return run_program(source, limits)

    else:
        if not LAYERS.uid_drop:
            pytest.skip("without the uid drop the OS layers alone do not contain hostile code")

        def runner(source: str, limits: Limits = DEFAULT) -> ExecResult:
            return run_program(source, limits, guard=False)

    runner.guarded = request.param == "guarded"
    return runner


@pytest.fixture
def evaluator(tmp_path, monkeypatch):
    """A sentinel file, a secret in the environment and a bystander process, all checked after the test."""
    monkeypatch.setenv(SECRET, "hunter2")
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("precious")
    bystander = subprocess.Popen(["sleep", "60"])
    env, mounts = environment(), Path("/proc/self/mountinfo").read_text()
    state = {"pid": os.getpid(), "sentinel": sentinel, "bystander": bystander.pid, "dir": tmp_path}
    try:
        yield state
        assert sentinel.read_text() == "precious"
        assert environment() == env
        assert Path("/proc/self/mountinfo").read_text() == mounts, "a sandbox mount leaked into the evaluator"
        assert bystander.poll() is None, "the bystander process was killed"
        deadline = time.monotonic() + 2
        while stray_sandbox_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        strays = stray_sandbox_processes()
        assert strays == [], [
            (pid, sandbox._proc_status(pid), Path(f"/proc/{pid}/cmdline").read_bytes()[:200]) for pid in strays
        ]
    finally:
        bystander.kill()
        bystander.wait()


# --- the switch -------------------------------------------------------------------------------------


def test_disabled_by_default_and_names_the_flag():
    assert not sandbox.code_execution_enabled()
    with pytest.raises(CodeExecutionNotAllowed, match="--allow-code-execution"):
        run_program("print(1)")
    with pytest.raises(CodeExecutionNotAllowed, match="--allow-code-execution"):
        sandbox.grade(TestJob("def f():\n    return 1\n", "assert f() == 1", "f"))


def test_enable_switch():
    sandbox.enable_code_execution()
    assert sandbox.code_execution_enabled()
    assert run_program("print(1)").passed


# --- verdicts ---------------------------------------------------------------------------------------


def test_correct_program_passes_with_stdlib_and_own_files(enabled):
    source = program(
        """
        import collections, functools, heapq, itertools, math, re, shutil, string, tempfile
        from pathlib import Path

        assert math.gcd(12, 18) == 6 and re.findall(r"\\d+", "a1b22") == ["1", "22"]
        assert list(itertools.accumulate([1, 2, 3])) == [1, 3, 6]
        assert collections.Counter("abca")["a"] == 2 and heapq.nsmallest(2, [5, 1, 3]) == [1, 3]
        assert functools.reduce(lambda a, b: a * b, [1, 2, 3, 4]) == 24 and string.ascii_lowercase[0] == "a"
        with open("data.txt", "w") as fh:
            fh.write("hello")
        assert open("data.txt").read() == "hello"
        Path("sub/deeper").mkdir(parents=True)
        Path("sub/deeper/x.txt").write_text("x")
        shutil.rmtree("sub")
        import os
        os.remove("data.txt")
        with tempfile.TemporaryFile() as fh:
            fh.write(b"temporary")
        print("ok", os.getcwd())
        """
    )
    result = run_program(source)
    assert result.status == "passed", result.stderr
    assert result.passed and result.returncode == 0 and result.stdout.startswith("ok ")
    workdir = result.stdout.split()[1]
    assert not os.path.exists(workdir), "the temporary directory must be removed"


def test_failing_assert_fails(enabled):
    result = run_program("def f(x):\n    return x + 1\n\nassert f(1) == 3\n")
    assert result.status == "failed" and not result.passed
    assert result.returncode == 1 and "AssertionError" in result.stderr


def test_syntax_error_fails(enabled):
    result = run_program("def f(:\n    pass\n")
    assert result.status == "failed" and "SyntaxError" in result.stderr


def test_huge_output_does_not_hang_and_keeps_the_tail(enabled):
    source = "import sys\nsys.stdout.write('x' * 5_000_000)\nsys.stderr.write('e' * 3_000_000)\nprint('END')\n"
    result = run_program(source, Limits(timeout_s=20))
    assert result.status == "passed", result.stderr[-300:]
    assert len(result.stdout) == sandbox.OUTPUT_CHARS and result.stdout.endswith("xxxEND\n")
    assert result.stderr == "e" * sandbox.OUTPUT_CHARS
    assert result.seconds < 10


def test_output_beyond_the_file_size_limit_is_cut_off(enabled):
    result = run_program("print('x' * 5_000_000)\n", Limits(max_file_mb=1, timeout_s=20))
    assert not result.passed and result.status in ("failed", "killed")
    assert result.seconds < 10


def test_run_programs_keeps_order_and_runs_in_parallel(enabled):
    sources = [f"import time\ntime.sleep(1)\nprint({i})\nassert {i} != 2\n" for i in range(4)]
    start = time.monotonic()
    results = run_programs(sources, workers=4)
    elapsed = time.monotonic() - start
    assert [r.stdout.strip() for r in results] == ["0", "1", "2", "3"]
    assert [r.status for r in results] == ["passed", "passed", "failed", "passed"]
    assert elapsed < 3, f"4 one-second programs on 4 workers took {elapsed:.1f} s"


def test_program_sees_a_scrubbed_environment(enabled, evaluator):
    source = program(
        """
        import os
        print(sorted(os.environ))
        assert os.environ["HOME"] == os.environ["TMPDIR"] == os.getcwd()
        """
    )
    result = run_program(source)
    assert result.passed, result.stderr
    expected = ["HOME", "LANG", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PATH", "TMPDIR"]
    assert result.stdout.strip() == str(expected)


@pytest.mark.skipif(not ROOT, reason="the uid drop and the namespaces need root")
def test_root_gets_every_layer_its_capabilities_allow(enabled):
    """Both namespaces need only CAP_SYS_ADMIN, and the uid drop may only be missing for want of the mount
    namespace (an interpreter other uids cannot reach); anything else is a regression, not the machine."""
    assert LAYERS.mount_namespace == LAYERS.network_namespace
    assert LAYERS.uid_drop or not LAYERS.mount_namespace
    uid = int(run_program("import os\nprint(os.getuid())\n").stdout)
    assert (uid != 0) == LAYERS.uid_drop


@needs_uid_drop
def test_concurrent_sandboxes_get_their_own_unprivileged_uids(enabled):
    source = "import os, time\ntime.sleep(0.5)\nprint(os.getuid(), os.getgid(), os.getgroups())\n"
    results = run_programs([source, source], workers=2)
    ids = [r.stdout.strip().split(maxsplit=2) for r in results]
    uids = {int(uid) for uid, gid, groups in ids}
    assert len(uids) == 2 and all(uid >= sandbox._UID_BASE for uid in uids)
    assert all(uid == gid and groups == "[]" for uid, gid, groups in ids)


def test_setup_failure_raises_instead_of_scoring(enabled, broken_sandbox):
    """A sandbox that cannot start must not be mistaken for a wrong answer."""
    with pytest.raises(SandboxError, match="nonexistent"):
        run_program("print(1)")
    result = sandbox.grade(TestJob("def f():\n    return 1\n", "assert f() == 1", "f"))
    assert result.status == "error" and not result.passed and "nonexistent" in result.stderr


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        Limits(timeout_s=0)


# --- limits -----------------------------------------------------------------------------------------


def test_infinite_loop_times_out(run, evaluator):
    result = run("while True:\n    pass\n", Limits(timeout_s=1))
    assert result.status == "timeout" and not result.passed
    assert 1 <= result.seconds < 2.5


def test_cpu_limit_kills(enabled):
    result = run_program("while True:\n    pass\n", Limits(cpu_s=1, timeout_s=10))
    assert result.status == "killed" and result.returncode < 0
    assert result.seconds < 5


def test_memory_bomb_fails_quickly(run, evaluator):
    result = run("data = bytearray(10 * 1024**3)\nprint(len(data))\n")
    assert not result.passed and "MemoryError" in result.stderr
    assert result.seconds < 5


def test_open_files_limit(enabled):
    source = "handles = [open(f'f{i}.txt', 'w') for i in range(100)]\n"
    result = run_program(source, Limits(max_open_files=32))
    assert result.status == "failed" and "Too many open files" in result.stderr


def test_file_size_limit(enabled):
    result = run_program("open('big.bin', 'wb').write(bytes(2 * 1024 * 1024))\n", Limits(max_file_mb=1))
    assert result.status == "failed" and "File too large" in result.stderr


@needs_uid_drop
def test_process_limit_is_enforced(enabled):
    """RLIMIT_NPROC counts threads of the sandbox uid; root ignores it, so this holds only after the uid drop."""
    source = program(
        """
        import threading
        stop = threading.Event()
        threads = [threading.Thread(target=stop.wait) for _ in range(20)]
        try:
            for t in threads:
                t.start()
        finally:
            stop.set()
        """
    )
    assert run_program(source, Limits(max_procs=50)).passed  # control: 20 threads fit in 50
    result = run_program(source, Limits(max_procs=8))
    assert result.status == "failed" and "can't start new thread" in result.stderr


# --- hostile programs -------------------------------------------------------------------------------

# Each prints "forked" once it has a child, so the OS-layer runs prove the bomb went off.
FORK_BOMBS = {
    "fork_loop": """
        import os
        while True:
            try:
                if os.fork():
                    print("forked", flush=True)
            except BlockingIOError:  # RLIMIT_NPROC: try again
                pass
        """,
    "setsid_escape": """
        import os, time
        for _ in range(8):
            if os.fork() == 0:
                os.setsid()  # leave the process group, so killing the group misses it
                while True:
                    time.sleep(1)
        print("forked", flush=True)
        while True:
            time.sleep(1)
        """,
    "multiprocessing": """
        import multiprocessing, time
        def spin():
            while True:
                time.sleep(1)
        if __name__ == "__main__":
            multiprocessing.set_start_method("fork")
            for i in range(200):
                multiprocessing.Process(target=spin).start()
                print("forked", flush=True)
        """,
}


@pytest.mark.parametrize("kind", FORK_BOMBS)
def test_fork_bomb_is_contained(run, evaluator, kind):
    result = run(program(FORK_BOMBS[kind]), Limits(timeout_s=1.5))
    assert not result.passed
    assert result.seconds < 4
    assert run.guarded or "forked" in result.stdout, result.stderr


@needs_uid_drop
def test_a_fork_bomb_does_not_starve_the_next_program(enabled):
    """Its killed processes linger as zombies and count against RLIMIT_NPROC until init reaps them."""
    run_program(program(FORK_BOMBS["fork_loop"]), Limits(timeout_s=1), guard=False)
    source = "import threading\nthreads = [threading.Thread(target=print) for _ in range(8)]\n"
    source += "for t in threads:\n    t.start()\n"
    result = run_program(source)
    assert result.passed, result.stderr


@pytest.mark.parametrize("target", ["test_dir", "etc", "tmp"])
def test_cannot_write_outside_its_directory(run, evaluator, target):
    if target == "tmp" and not run.guarded and not LAYERS.mount_namespace:
        pytest.skip("/tmp is world-writable; only the mount namespace (or the guard) hides it")
    path = {
        "test_dir": evaluator["dir"] / "evil.txt",
        "etc": Path("/etc/latentrl-sandbox-evil.txt"),
        "tmp": Path("/tmp/latentrl-sandbox-evil.txt"),
    }[target]
    try:
        result = run(f"open({str(path)!r}, 'w').write('pwned')\n")
        assert not result.passed and not path.exists()
    finally:
        path.unlink(missing_ok=True)


def test_cannot_delete_outside_its_directory(run, evaluator):
    sentinel, directory = str(evaluator["sentinel"]), str(evaluator["dir"])
    for source in (
        f"import os\nos.remove({sentinel!r})\n",
        f"import shutil\nshutil.rmtree({directory!r})\n",
        f"import os\nos.rename({sentinel!r}, 'stolen.txt')\n",
    ):
        result = run(source)
        assert not result.passed
        assert evaluator["sentinel"].exists()


def test_no_network(run, evaluator):
    if not run.guarded and not LAYERS.network_namespace:
        pytest.skip("no network namespace on this machine: only the guard blocks sockets")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        source = f"import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n"
        result = run(source)
        assert not result.passed
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing arrived
        with socket.create_connection(("127.0.0.1", port), timeout=2):  # control: the listener works
            pass


def test_cannot_kill_the_evaluator_or_a_bystander(run, evaluator):
    for source in (
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
        f"import os, signal\nos.kill({evaluator['pid']}, signal.SIGKILL)\n",
        f"import os, signal\nos.kill({evaluator['bystander']}, signal.SIGKILL)\n",
        f"import os, signal\nos.killpg(os.getpgid({evaluator['bystander']}), signal.SIGKILL)\n",
    ):
        result = run(source)
        assert not result.passed and "PermissionError" in result.stderr
        assert os.path.exists(f"/proc/{evaluator['pid']}")


@needs_uid_drop  # without it, a guard bug here would kill every process of the user running the tests
def test_kill_everything_reaches_only_the_sandbox(run, evaluator):
    # kill(-1) returns success even when every target refuses, so the verdict is the survivors:
    # the evaluator (here) and the bystander (checked by the fixture).
    run("import os, signal\nos.kill(-1, signal.SIGKILL)\n")
    assert os.path.exists(f"/proc/{evaluator['pid']}")


def test_cannot_read_the_evaluators_environment(run, evaluator):
    source = program(
        f"""
        import os
        assert {SECRET!r} not in os.environ
        for pid in (os.getppid(), {evaluator["pid"]}):
            try:
                data = open(f"/proc/{{pid}}/environ", "rb").read()
            except OSError:
                continue
            assert b"hunter2" not in data, "leaked"
        """
    )
    assert os.environ[SECRET] == "hunter2"
    result = run(source)
    assert result.passed, result.stderr


# --- the guard on its own (no OS layer: same uid as the test, no namespaces, no limits) ----------------


def guard_only(source: str, cwd: Path) -> subprocess.CompletedProcess:
    (cwd / "program.py").write_text(source)
    argv = [sys.executable, "-I", "-B", "-c", sandbox._script_source(), "program.py"]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    "attack",
    [
        "import os\nos.remove({sentinel!r})",
        "import shutil\nshutil.rmtree({outside!r})",
        "open({outside!r} + '/new.txt', 'w')",
        "import pathlib\npathlib.Path({outside!r}, 'new.txt').write_text('x')",
        "import os\nos.close(os.open({outside!r} + '/new.txt', os.O_WRONLY | os.O_CREAT))",
        "import os\nos.kill({bystander}, 9)",
        "import subprocess\nsubprocess.run(['true'])",
        "import os\nos.system('true')",
        "import os\nos.fork()",
        "import socket\nsocket.create_connection(('127.0.0.1', 9))",
        "import socket\nsocket.socket()",
        "open('/proc/{pid}/environ').read()",
    ],
)
def test_guard_alone_blocks(tmp_path, evaluator, attack):
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    fields = {"sentinel": str(evaluator["sentinel"]), "outside": str(outside), "bystander": evaluator["bystander"]}
    proc = guard_only(attack.format(pid=os.getpid(), **fields) + "\n", work)
    assert proc.returncode != 0
    assert "disabled in the sandbox" in proc.stderr or "sandbox may" in proc.stderr, proc.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]


def test_guard_alone_allows_work_in_its_directory(tmp_path):
    source = program(
        """
        import os, shutil, subprocess
        os.makedirs("a/b")
        open("a/b/f.txt", "w").write("x")
        os.rename("a/b/f.txt", "a/g.txt")
        shutil.rmtree("a")
        print(open("/proc/self/status").readline().strip(), sorted(os.listdir(".")))
        """
    )
    proc = guard_only(source, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "Name:" and proc.stdout.strip().endswith("['program.py']")
