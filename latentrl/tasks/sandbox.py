"""Run untrusted Python programs (model-written code) in a separate, limited process.

Generated code never runs in the evaluator or trainer process. Each program is written to a fresh
temporary directory and run there as `sys.executable -I` (isolated mode: no PYTHON* variables, no
user site, no script directory on sys.path), with a minimal environment (PATH, LANG, HOME and TMPDIR
pointing at that directory), stdin from /dev/null and output captured in unnamed temporary files.

Layers, outermost first (`probe_layers()` says which ones this machine grants):

1. Resource limits (setrlimit: CPU seconds, address space, processes, file size, open files, no
   core dumps) and a wall-clock timeout after which the whole session is SIGKILLed.
2. A new session/process group; on exit or timeout the group is killed, so background children die.
3. As root: a uid/gid of its own per concurrent run (1<<30 + pid*64 + slot; no supplementary groups),
   so file permissions protect the evaluator's files, RLIMIT_NPROC is enforced (root ignores it), it
   cannot signal the evaluator, cannot read /proc/<evaluator>/environ, and every process left with
   that uid (even one that escaped the process group with setsid) is killed afterwards. Concurrent
   sandboxes cannot signal each other or share a process budget, and a uid whose killed processes
   are still zombies (they count against RLIMIT_NPROC until init reaps them) is not reused.
   PR_SET_NO_NEW_PRIVS stops setuid binaries from giving privileges back.
4. As root: a private mount namespace in which /tmp, /var/tmp and /dev/shm are empty read-only
   tmpfs (so the only writable directory is the program's own), and directories the sandbox uid
   could not traverse to reach the interpreter (e.g. a Python under a 0700 /root) are replaced by an
   empty tmpfs with just that path bound back in. Mount propagation is made private first, so none
   of this is visible outside the namespace.
5. A new network namespace (no interfaces up: even 127.0.0.1 is unreachable). Without root it is
   tried inside a new user namespace, which most kernels allow.
6. A "reliability guard" inside the program's process (`_reliability_guard`): sockets, process
   creation and signals raise; writing, deleting or renaming outside its directory raises; reading
   another process's /proc entry raises. Any deliberate attacker bypasses it (posix, _io, ctypes);
   it only turns careless or accidental damage into an exception, and covers sockets when the kernel
   grants no network namespace.

What it does NOT protect against: there is no seccomp filter, so every system call is reachable and
the kernel is the attack surface; no PID namespace, so the program can list host processes in /proc
(as root it cannot signal or inspect them); no cgroup, so disk I/O and the memory of page cache or
kernel objects are not limited; as a non-root evaluator there is no uid drop and no mount namespace,
so the program runs as the evaluator's user, can read its files, write to world-writable
directories, read /proc/<evaluator>/environ and signal the evaluator, with only the guard in the way
(and RLIMIT_NPROC counts all of that user's processes). World-readable files stay readable.
`run_program` reports exit status 0 as "passed"; graders use `grade`.

Grading (`grade`, the scorer of code rewards and benchmarks). Threat: a candidate that makes its tests
look passed without solving the task. Verdict: "passed" iff the process exits 0 and the verdict pipe
holds exactly a 128-bit token that the evaluator sends, with the job, on another pipe; the harness
(`_grade`, given as `-c` source) reads and closes that pipe before the candidate runs, keeps the token
only in its own frame, and writes it after the last test passed, then `os._exit(0)` (no atexit, no
__del__). Nothing about the run is in a file, argv or the environment. So forging needs the token,
i.e. the harness's frame or memory; a Python audit hook (cannot be removed) refuses every way there
that CPython 3.11 audits: opening anything on procfs or in a procfs directory (/proc/self/mem, environ,
/dev/fd/N), sys._getframe, tb_frame/gi_frame/cr_frame/ag_frame, sys._current_frames, settrace,
setprofile, gc.get_objects/referrers/referents, new audit hooks, ctypes, hand-made code objects,
marshal (imports compile source), attribute writes that are audited (function __code__), new
interpreters and processes. Signal handlers (they receive the interrupted frame) and new native
modules (fresh unpatched copies of _signal, _posixsubprocess, _ctypes) are refused by replacing the
functions that install or load them. Not forging but fooling the tests: the tests run with a private
copy of the builtins and the trusted setup's names (the candidate contributes only its entry point);
the candidate's code runs only inside a wrapper after which every module namespace, the dicts, lists
and sets bound in them and every mutable class are restored to a snapshot, cyclic GC is off (no
finalizer of the candidate runs later) and no thread of its may be left; its results and mutated
arguments must be exactly builtin types (dict/list/tuple/set/frozenset of str/bytes/int/float/complex/
bool/None; Counter/OrderedDict/defaultdict are copied as dicts), and the tests get fresh copies, so no
__eq__ of the candidate's ever runs. Any exception anywhere is a failure.
Left open, in-process: state inside objects that are not tracked (e.g. a function's __kwdefaults__
dict, C-level state such as numpy's error mode or the codec registry); exploits of CPython bugs; tests
that need objects of the candidate's own classes fail (1 of 500 offline MBPP: task 367).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = [
    "CodeExecutionNotAllowed",
    "ExecResult",
    "Layers",
    "Limits",
    "SandboxError",
    "TestJob",
    "code_execution_enabled",
    "enable_code_execution",
    "grade",
    "grade_many",
    "probe_layers",
    "run_program",
    "run_programs",
]

OUTPUT_CHARS = 2000  # tail of stdout/stderr kept in an ExecResult
_UID_BASE = 1 << 30  # far above system and container (subuid) ranges; pid < 2**22, so uids stay < 2**31
_UID_SLOTS = 64  # concurrent sandboxes per evaluator process
_HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm")  # world-writable: replaced by empty tmpfs in the sandbox


class CodeExecutionNotAllowed(RuntimeError):
    """Running generated code was not switched on for this process."""


class SandboxError(RuntimeError):
    """The sandbox itself could not start; never a verdict on the program, so never scored as a failure."""


_enabled = False


def enable_code_execution() -> None:
    """Process-wide opt-in (the --allow-code-execution flag): running model-written code is a decision."""
    global _enabled
    _enabled = True


def code_execution_enabled() -> bool:
    return _enabled


def _require_enabled() -> None:
    if not _enabled:
        raise CodeExecutionNotAllowed(
            "running generated code is disabled; pass --allow-code-execution to run it in the sandbox "
            "(separate process, resource limits, no network)"
        )


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock; the whole process group is killed after it
    cpu_s: int = 10  # RLIMIT_CPU
    memory_mb: int = 1024  # RLIMIT_AS
    max_procs: int = 32  # RLIMIT_NPROC: per uid, so only meaningful with the uid drop (root)
    max_file_mb: int = 16  # RLIMIT_FSIZE; also caps captured stdout/stderr
    max_open_files: int = 64  # RLIMIT_NOFILE

    def __post_init__(self) -> None:
        if min(self.timeout_s, self.cpu_s, self.memory_mb, self.max_procs, self.max_file_mb, self.max_open_files) <= 0:
            raise ValueError(f"every limit must be positive: {self}")


@dataclass(frozen=True)
class ExecResult:
    status: str  # "passed" (exit 0) | "failed" (non-zero exit) | "timeout" | "killed" (by a signal)
    returncode: int | None  # negative: killed by that signal number (a timeout kills with SIGKILL)
    stdout: str  # last OUTPUT_CHARS characters
    stderr: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Layers:
    """The OS layers a run actually got (the rlimits, the process group and the guard are always on)."""

    uid_drop: bool
    mount_namespace: bool
    network_namespace: bool


@dataclass(frozen=True)
class TestJob:
    """A candidate and the tests that grade it (see `grade`)."""

    __test__ = False  # not a pytest class

    candidate: str  # untrusted source, e.g. a HumanEval prompt followed by the model's completion
    tests: str  # trusted: asserts, or a `check(candidate)` definition and call
    entry_point: str  # the candidate's function that the tests call (by this name)
    setup: str = ""  # trusted: imports and helpers the tests use (e.g. the prompt); the candidate never sees it


def run_program(source: str, limits: Limits = Limits()) -> ExecResult:
    """Run `source` as a Python program in the sandbox and report how it ended (exit 0 is "passed")."""
    _require_enabled()
    return _execute(source, limits)[0]


def grade(job: TestJob, limits: Limits = Limits()) -> ExecResult:
    """Run the job's tests on its candidate in the sandbox; "passed" only if the harness sent the secret token.

    This is the scorer for rewards and benchmarks: exit status and output decide nothing (module docstring).
    """
    _require_enabled()
    return _execute("", limits, job=job)[0]


def run_programs(sources: list[str], limits: Limits = Limits(), workers: int | None = None) -> list[ExecResult]:
    """Run many programs concurrently (threads that each wait on one sandbox); results in input order."""
    _require_enabled()
    return _pool_map(lambda source: run_program(source, limits), sources, workers)


def grade_many(jobs: list[TestJob], limits: Limits = Limits(), workers: int | None = None) -> list[ExecResult]:
    """`grade` for many jobs concurrently; results in input order."""
    _require_enabled()
    return _pool_map(lambda job: grade(job, limits), jobs, workers)


def _pool_map(func, items: list, workers: int | None) -> list:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=workers or min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(func, items))


@functools.cache
def probe_layers() -> Layers:
    """Which OS layers this machine grants, found by running an empty (trusted) program once."""
    _, applied = _execute("", Limits(timeout_s=60))
    return _layers(applied)


def _layers(applied: dict) -> Layers:
    return Layers(
        uid_drop=applied.get("uid") is not None,
        mount_namespace=bool(applied.get("mountns")),
        network_namespace=bool(applied.get("netns")),
    )


# --- evaluator side ---------------------------------------------------------------------------------


def _execute(source: str, limits: Limits, *, guard: bool = True, job: TestJob | None = None) -> tuple[ExecResult, dict]:
    """One sandboxed run; also returns what the launcher applied. guard=False exists for tests of the OS layers.

    With a job, nothing is written to the directory: the harness gets the job and the token through a pipe.
    """
    token = secrets.token_hex(16)
    with (
        _sandbox_uid() as uid,
        _workdir(uid) as workdir,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        if job is None:
            with open(os.path.join(workdir, "program.py"), "w", encoding="utf-8") as fh:
                fh.write(source)
            message = None
        else:
            message = json.dumps({"token": token, **dataclasses.asdict(job)}).encode()
        returncode, timed_out, seconds, applied, verdict = _spawn(
            _launcher_config(workdir, uid, limits, guard, graded=job is not None), limits, out, err, message
        )
        stdout, stderr = _tail(out), _tail(err)
    if "error" in applied or not (applied or timed_out):
        raise SandboxError(f"sandbox setup failed: {applied.get('error', 'no report from the launcher')}; {stderr}")
    if uid is not None and applied and applied.get("uid") is None:
        _warn_once("sandbox: root, but no uid drop (interpreter unreachable by other uids and no mount namespace)")
    passed = returncode == 0 and (job is None or verdict == token.encode())
    status = "timeout" if timed_out else "passed" if passed else "killed" if returncode < 0 else "failed"
    return ExecResult(status, returncode, stdout, stderr, seconds), applied


def _spawn(config: dict, limits: Limits, out, err, job: bytes | None) -> tuple[int, bool, float, dict, bytes]:
    """Start the launcher in a new session, wait up to the timeout, then kill whatever is left of it.

    A graded run also gets the job on one pipe (written by a thread: it may exceed the pipe's buffer) and
    returns what arrived on the verdict pipe.
    """
    report_r, report_w = os.pipe()
    job_r, job_w = os.pipe()
    verdict_r, verdict_w = os.pipe()
    config["report_fd"] = report_w
    child_fds = (report_w, job_r, verdict_w) if job is not None else (report_w,)
    if job is not None:
        config["argv"] = [*config["argv"], str(job_r), str(verdict_w)]
    with os.fdopen(report_r, "rb") as report, os.fdopen(verdict_r, "rb") as verdict, os.fdopen(job_w, "wb") as sender:
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _launcher_source(), json.dumps(config)],
                cwd=config["workdir"],
                env=_child_env(config["workdir"]),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=child_fds,
                start_new_session=True,
            )
        finally:
            for fd in (report_w, job_r, verdict_w):
                os.close(fd)  # the launcher and the program have their own copies
        writer = threading.Thread(target=_send, args=(sender, job or b""), daemon=True)
        writer.start()
        timed_out = False
        try:
            proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            seconds = time.monotonic() - start
            _kill_group(proc.pid)  # on timeout; and children that outlived a finished program
            proc.wait()
            if config["uid"] is not None:
                _kill_uid(config["uid"])  # processes that left the group with setsid()
        writer.join()  # the readers are dead, so a blocked write has failed by now
        return proc.returncode, timed_out, seconds, _parse_report(report.read()), verdict.read(4096)


def _send(pipe, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the program may exit (or be killed) without reading it all
        pipe.write(data)
        pipe.close()


def _launcher_config(workdir: str, uid: int | None, limits: Limits, guard: bool, graded: bool = False) -> dict:
    program = [sys.executable, "-I", "-B"]
    if graded:
        program += ["-c", _grader_source()]
    else:
        program += ["-c", _runner_source(), "program.py"] if guard else ["program.py"]
    keep = [sys.executable, os.path.dirname(sys.executable), sys.prefix, sys.exec_prefix]
    keep += [sys.base_prefix, sys.base_exec_prefix, workdir]
    return {
        "argv": program,
        "workdir": workdir,
        "uid": uid,
        "rlimits": _rlimits(limits),
        "hide": [d for d in _HIDDEN_DIRS if os.path.isdir(d)],
        "keep": sorted({os.path.realpath(p) for p in keep if os.path.exists(p)}),
    }


def _rlimits(limits: Limits) -> dict[str, list[int]]:
    mb = 1024 * 1024
    return {
        "RLIMIT_CPU": [limits.cpu_s, limits.cpu_s + 1],  # SIGXCPU at the soft limit, SIGKILL a second later
        "RLIMIT_AS": [limits.memory_mb * mb] * 2,
        "RLIMIT_NPROC": [limits.max_procs] * 2,
        "RLIMIT_FSIZE": [limits.max_file_mb * mb] * 2,
        "RLIMIT_NOFILE": [limits.max_open_files] * 2,
        "RLIMIT_CORE": [0, 0],
    }


def _child_env(workdir: str) -> dict[str, str]:
    """Nothing from the evaluator's environment; one thread per numeric library so RLIMIT_AS is not eaten by pools."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}
    env |= {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return env


_slots = threading.Condition()
_busy_slots: set[int] = set()


def _reset_slots_in_child() -> None:
    """A forked evaluator has a new pid (hence new uids) and none of the threads that held slots or the lock."""
    global _slots
    _slots = threading.Condition()
    _busy_slots.clear()


os.register_at_fork(after_in_child=_reset_slots_in_child)


@contextlib.contextmanager
def _sandbox_uid() -> Iterator[int | None]:
    """A uid no other live sandbox uses (None when not root): its files, signals and process count are its own.

    Derived from the evaluator's pid, so data-parallel evaluator processes never share one.
    """
    if os.geteuid() != 0:
        yield None
        return
    slot = _claim_slot()
    try:
        yield _slot_uid(slot)
    finally:
        with _slots:
            _busy_slots.discard(slot)
            _slots.notify()


def _slot_uid(slot: int) -> int:
    return _UID_BASE + os.getpid() * _UID_SLOTS + slot


def _claim_slot(patience_s: float = 5.0) -> int:
    """A free slot whose uid owns no process at all, zombies included.

    Killed processes stay zombies until init reaps them (seconds, on some machines) and count against
    RLIMIT_NPROC meanwhile: reusing that uid at once would make the next program fail to start a thread.
    Live processes on a free slot are strays (e.g. of a crashed evaluator that had this pid): killed here.
    """
    deadline = time.monotonic() + patience_s
    with _slots:
        while True:
            free = [slot for slot in range(_UID_SLOTS) if slot not in _busy_slots]
            if free:
                processes = list(_processes())
                live = {uid for _, uid, state in processes if state != "Z"}
                for slot in free:
                    if _slot_uid(slot) in live:
                        _kill_uid(_slot_uid(slot))
                owners = {uid for _, uid, _ in processes}
                clean = [slot for slot in free if _slot_uid(slot) not in owners]
                if clean or time.monotonic() > deadline:
                    if not clean:
                        log.warning("sandbox: no uid without zombies after %.0f s; reusing one", patience_s)
                    slot = (clean or free)[0]
                    _busy_slots.add(slot)
                    return slot
            _slots.wait(timeout=0.05)


@contextlib.contextmanager
def _workdir(uid: int | None) -> Iterator[str]:
    """A fresh directory owned by the sandbox uid (mode 0700), removed with everything in it afterwards."""
    path = tempfile.mkdtemp(prefix=f"latentrl-sandbox-{os.getpid()}-")  # the pid says whose it is
    try:
        if uid is not None:
            os.chown(path, uid, uid)
        yield path
    finally:
        _remove_tree(path)


def _remove_tree(path: str) -> None:
    """rmtree that also copes with directories the program made unreadable (matters when not root)."""

    def make_writable_and_retry(func, failed_path, _exc_info) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed_path), 0o700)
            os.chmod(failed_path, 0o700)
            func(failed_path)

    shutil.rmtree(path, onerror=make_writable_and_retry)
    if os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _kill_uid(uid: int) -> None:
    """SIGKILL every live process of the sandbox uid until none is left (a fork bomb refills between scans)."""
    for _ in range(100):
        pids = _live_pids_of_uid(uid)
        if not pids:
            return
        for pid in pids:
            _kill_if_uid(pid, uid)
        time.sleep(0.005)
    log.warning("sandbox uid %d still has processes after repeated SIGKILL", uid)


def _kill_if_uid(pid: int, uid: int) -> None:
    """Pin the process with a pidfd before re-checking its uid, so a recycled pid is never killed."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if _uid_of(pid) == uid:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def _live_pids_of_uid(uid: int) -> list[int]:
    """Pids of non-zombie processes whose real uid is `uid` (zombies are dead; init reaps them)."""
    return [pid for pid, owner, state in _processes() if owner == uid and state != "Z"]


def _processes() -> Iterator[tuple[int, int, str]]:
    """(pid, real uid, state letter) of every process, read from /proc."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            status = _proc_status(int(entry))
            if status:
                yield int(entry), int(status["Uid"].split()[0]), status["State"].split()[0]


def _uid_of(pid: int) -> int | None:
    status = _proc_status(pid)
    return int(status["Uid"].split()[0]) if status else None


def _proc_status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
            return dict(line.split(":\t", 1) for line in fh if ":\t" in line)
    except OSError:
        return {}


def _parse_report(data: bytes) -> dict:
    """The launcher's last JSON line: what it applied, or {"error": ...}; {} if it died before writing."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    try:
        return json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return {"error": f"unreadable launcher report {lines[-1]!r}"}


def _tail(fh) -> str:
    """Last OUTPUT_CHARS characters of a captured stream, without reading all of a large one."""
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - 4 * OUTPUT_CHARS))  # at most 4 bytes per UTF-8 character
    return fh.read().decode("utf-8", errors="replace")[-OUTPUT_CHARS:]


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


@functools.cache
def _launcher_source() -> str:
    return (
        _source_of(_launch, _reachable, _mount_view) + "_launch(__import__('json').loads(__import__('sys').argv[1]))\n"
    )


@functools.cache
def _grader_source() -> str:
    return _source_of(_reliability_guard, _grade) + "_grade()\n"


@functools.cache
def _runner_source() -> str:
    return _source_of(_reliability_guard, _run_guarded) + "_run_guarded()\n"


def _source_of(*functions) -> str:
    """The functions below run in the child: it receives their source, never this module (or its imports)."""
    return "".join(inspect.getsource(f) + "\n\n" for f in functions)


# --- child side: each function is self-contained (shipped as source, run by a fresh interpreter) ---------


def _launch(config: dict) -> None:
    """Child step 1, still privileged: limits, namespaces, uid drop, then exec the program's interpreter.

    Reports what it applied (or why it failed) as a JSON line on a pipe that closes at exec, so the
    program can neither see nor forge it. A layer the kernel refuses is reported, not fatal.
    """
    import ctypes
    import json
    import os
    import resource

    clone_newns, clone_newuser, clone_newnet, pr_set_no_new_privs = 0x20000, 0x10000000, 0x40000000, 38
    libc = ctypes.CDLL(None, use_errno=True)
    c_str, c_ulong = ctypes.c_char_p, ctypes.c_ulong
    libc.mount.argtypes = (c_str, c_str, c_str, c_ulong, c_str)  # flags are unsigned long, not int
    libc.prctl.argtypes = (ctypes.c_int, c_ulong, c_ulong, c_ulong, c_ulong)
    report = os.fdopen(config["report_fd"], "w")
    os.set_inheritable(config["report_fd"], False)
    applied = {"uid": None, "mountns": False, "netns": False}
    try:
        for name, (soft, hard) in config["rlimits"].items():
            resource.setrlimit(getattr(resource, name), (soft, hard))
        root = os.geteuid() == 0
        applied["netns"] = libc.unshare(clone_newnet) == 0
        if not root and not applied["netns"]:  # an unprivileged user namespace can own a network namespace
            applied["netns"] = libc.unshare(clone_newuser | clone_newnet) == 0
        if root and config["uid"] is not None:
            applied["mountns"] = libc.unshare(clone_newns) == 0 and _mount_view(libc, config["hide"], config["keep"])
            if applied["mountns"] or all(_reachable(path) for path in config["keep"]):
                uid = config["uid"]
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                applied["uid"] = uid
        os.chdir(config["workdir"])
        if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        report.write(json.dumps(applied) + "\n")
        report.flush()
        try:
            os.execv(config["argv"][0], config["argv"])
        except OSError as exc:
            raise OSError(exc.errno, f"cannot exec {config['argv'][0]}: {exc.strerror}") from None
    except BaseException as exc:
        report.write(json.dumps({"error": repr(exc)}) + "\n")
        report.flush()
        os._exit(1)


def _reachable(path: str) -> bool:
    """Whether an unrelated uid can traverse every directory above `path` (used only by the launcher)."""
    import os
    import stat

    parent = os.path.dirname(path)
    while parent != "/":
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(parent)
    return True


def _mount_view(libc, hide: list[str], keep: list[str]) -> bool:
    """In a fresh mount namespace: cover `hide` and untraversable ancestors of `keep` with an empty read-only
    tmpfs, then bind each needed child back, so `keep` resolves at its own path and nothing else there does.

    Returns False (having mounted nothing) if propagation cannot be made private: a mount made before
    that would leak into the evaluator's namespace.
    """
    import ctypes
    import os
    import stat

    ms_rdonly, ms_nosuid, ms_nodev, ms_remount, ms_bind, ms_rec, ms_private = 1, 2, 4, 32, 4096, 16384, 1 << 18

    def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        args = [s.encode() if s is not None else None for s in (source, target, fstype)]
        if libc.mount(*args, flags, data.encode() if data else None) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"mount {target}: {os.strerror(errno)}")

    if libc.mount(None, b"/", None, ms_rec | ms_private, None) != 0:
        return False
    covers: dict[str, set[str]] = {h: set() for h in hide}  # directory to cover -> children to bind back
    for path in keep:
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            above, below = "/" + "/".join(parts[:depth]), "/" + "/".join(parts[: depth + 1])
            if above in covers or not os.stat(above).st_mode & stat.S_IXOTH:
                covers.setdefault(above, set()).add(below)
    # Open every child before covering anything: once covered, it can only be reached through its fd.
    fds = {child: os.open(child, os.O_PATH | os.O_CLOEXEC) for children in covers.values() for child in children}
    for cover in sorted(covers, key=lambda p: p.count("/")):  # outer directories first
        mount("tmpfs", cover, "tmpfs", ms_nosuid | ms_nodev, "mode=0755,size=64k")
        for child in sorted(covers[cover]):
            mountpoint = os.path.join(cover, os.path.basename(child))
            if stat.S_ISDIR(os.stat(f"/proc/self/fd/{fds[child]}").st_mode):
                os.mkdir(mountpoint)
            else:
                os.close(os.open(mountpoint, os.O_CREAT | os.O_WRONLY, 0o644))
            mount(f"/proc/self/fd/{fds[child]}", mountpoint, None, ms_bind | ms_rec)
        mount(None, cover, None, ms_remount | ms_rdonly | ms_nosuid | ms_nodev)
    for fd in fds.values():
        os.close(fd)
    return True


def _reliability_guard(root: str) -> None:
    """Child step 2, inside the program's process: make the easy ways to hurt the host raise.

    A second layer only: code that means harm bypasses it (posix, _io, ctypes). Anything may be done
    inside `root` and read anywhere except other processes' /proc entries; importing any module works.
    """
    import _posixsubprocess
    import builtins
    import errno
    import functools
    import io
    import os
    import shutil
    import socket
    import subprocess

    root = os.path.realpath(root)
    me = str(os.getpid())

    def resolve(path, dir_fd=None) -> str:
        path = os.fsdecode(path)
        if dir_fd is not None and not os.path.isabs(path):
            path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        return os.path.realpath(path)

    def check(path, dir_fd=None, *, writing: bool = True) -> None:
        if isinstance(path, int) or path is None:  # an open fd was checked when it was opened
            return
        real = resolve(path, dir_fd)
        parts = real.split(os.sep)
        if writing and real != root and not real.startswith(root + os.sep):
            raise PermissionError(errno.EACCES, "the sandbox may only modify its own directory", path)
        if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and parts[2] != me:
            raise PermissionError(errno.EACCES, "the sandbox may not read other processes", path)

    def refuse(what: str):
        def refused(*args, **kwargs):
            raise PermissionError(errno.EPERM, f"{what} is disabled in the sandbox")

        return refused

    def confine(func, params=((0, "path", "dir_fd"),)):
        """Check each (position, keyword, dir_fd keyword) path argument before calling `func`."""

        @functools.wraps(func)
        def confined(*args, **kwargs):
            for position, keyword, fd_keyword in params:
                path = args[position] if position < len(args) else kwargs.get(keyword)
                check(path, kwargs.get(fd_keyword) if fd_keyword else None)
            return func(*args, **kwargs)

        return confined

    def open_file(file, mode="r", *args, **kwargs):
        check(file, writing=any(c in mode for c in "wax+"))
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, dir_fd=None, **kwargs):
        write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        check(path, dir_fd, writing=bool(flags & write_flags))
        return real_os_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            raise PermissionError(errno.EPERM, "network access is disabled in the sandbox")

    real_open, real_os_open = io.open, os.open
    builtins.open = io.open = open_file
    os.open = os_open
    for name in ("remove", "unlink", "rmdir", "mkdir", "chmod", "chown", "mkfifo", "mknod", "utime"):
        setattr(os, name, confine(getattr(os, name)))
    for name in ("lchown", "truncate", "chroot", "removedirs"):
        setattr(os, name, confine(getattr(os, name), ((0, "path", None),)))
    for name in ("rename", "replace", "link"):
        setattr(os, name, confine(getattr(os, name), ((0, "src", "src_dir_fd"), (1, "dst", "dst_dir_fd"))))
    os.symlink = confine(os.symlink, ((1, "dst", "dir_fd"),))
    shutil.rmtree = confine(shutil.rmtree, ((0, "path", "dir_fd"),))
    shutil.move = confine(shutil.move, ((0, "src", None), (1, "dst", None)))
    shutil.chown = confine(shutil.chown, ((0, "path", None),))
    for name in ("kill", "killpg", "system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "setsid"):
        setattr(os, name, refuse(f"os.{name}"))
    for name in ("execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe"):
        setattr(os, name, refuse(f"os.{name}"))
    for name in ("spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe"):
        setattr(os, name, refuse(f"os.{name}"))
    subprocess.Popen.__init__ = refuse("subprocess")
    _posixsubprocess.fork_exec = refuse("process creation")
    socket.socket = socket.SocketType = NoSocket
    for name in ("create_connection", "create_server", "socketpair", "fromfd"):
        setattr(socket, name, refuse(f"socket.{name}"))


def _run_guarded() -> None:
    """Child step 3: install the guard, then run program.py as __main__ (argv: ['-c', 'program.py'])."""
    import os
    import runpy
    import sys

    _reliability_guard(os.getcwd())
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")


def _grade() -> None:
    """Child step 3 of a graded run (argv: job fd, verdict fd): the trusted harness (module docstring, "Grading").

    Only this function's frame ever holds the token; it writes it to the verdict pipe after the last test
    passed and exits at once. Every helper below is a closure bound before the candidate runs, so nothing the
    harness calls afterwards is looked up in a namespace the candidate can change.
    """
    import _imp
    import _signal
    import _thread
    import ast
    import builtins
    import collections
    import gc
    import importlib
    import json
    import operator
    import os
    import signal
    import sys
    import traceback

    job_fd, verdict_fd = int(sys.argv[1]), int(sys.argv[2])
    write, exit_now, stat, thread_count, gc_disable = os.write, os._exit, os.stat, _thread._count, gc.disable
    is_, all_, map_, zip_, len_, type_, tuple_, dict_ = operator.is_, all, map, zip, len, type, tuple, dict
    set_attr, del_attr, run, type_error, missing = type.__setattr__, type.__delattr__, exec, TypeError, object()
    scalars = (type(None), bool, int, float, complex, str, bytes)
    containers = (list, tuple, set, frozenset)
    dict_items, dict_like = dict.items, (dict, collections.Counter, collections.OrderedDict, collections.defaultdict)
    immutable_type = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: setattr on such a class raises anyway
    frame_attributes = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
    refused_events = frozenset({
        "sys._current_frames", "sys.settrace", "sys.setprofile", "sys.addaudithook",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents",
        "code.__new__", "marshal.load", "marshal.loads", "object.__setattr__", "object.__delattr__",
        "cpython.PyInterpreterState_New", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn",
        "os.system", "subprocess.Popen",
    })  # fmt: skip
    # Native modules cannot be loaded once the candidate runs: these are the ones solutions commonly use.
    preloaded = "array bisect cmath collections copy datetime decimal fractions functools hashlib heapq itertools "
    preloaded = (preloaded + "json math operator random re statistics string struct typing").split()
    relaxed = []  # set once the token is gone: nothing is left to protect

    class Refused(RuntimeError):
        """An operation that would let the candidate reach the harness (or forge its verdict)."""

    def audit(event: str, args: tuple) -> None:
        """Refuse what reaches another frame's locals, the process's memory or a new interpreter/process."""
        if relaxed:
            return
        if event == "open":
            path = args[0]
            if type_(path) is int:
                return  # an fd that is already open: nothing new is reached
            if type_(path) is not str and type_(path) is not bytes:
                raise PermissionError(f"sandbox: open() of a {type_(path).__name__} path is refused")
            separator = "/" if type_(path) is str else b"/"
            for probe in (path, path.rpartition(separator)[0] or "."):  # the file, and its directory (/dev/fd/N)
                try:
                    on_procfs = stat(probe).st_dev == proc_dev
                except OSError:
                    continue  # does not exist (a new file is never on procfs) or cannot be opened anyway
                if on_procfs:
                    raise PermissionError(f"sandbox: opening {path!r} (procfs) is refused")
        elif event == "sys._getframe":
            raise ValueError("sandbox: sys._getframe is refused")  # what its callers already catch
        elif event == "object.__getattr__" and args[1] in frame_attributes:
            raise Refused(f"sandbox: reading .{args[1]} is refused")
        elif event in refused_events or event[:7] == "ctypes.":
            raise Refused(f"sandbox: {event} is refused")

    def refuse(what: str, error: type[Exception] = Refused):
        def refused(*args, **kwargs):
            raise error(f"sandbox: {what} is refused")

        return refused

    def replace_everywhere(replacements: dict[int, object]) -> None:
        """Replace functions in every module namespace, under any name (e.g. `signal.signal`, `_signal.signal`)."""
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if type(namespace) is dict:
                for name, value in list(namespace.items()):
                    if id(value) in replacements:
                        namespace[name] = replacements[id(value)]

    def snapshot() -> tuple[list, list, list]:
        """Every module's namespace, the dicts, lists and sets bound in them, and their mutable classes."""
        maps, lists, classes, seen = [], [], [], set()

        def track(value) -> None:
            for item in value.__mro__ if isinstance(value, type) else (value,):
                kind = type(item)
                if id(item) in seen:
                    continue
                seen.add(id(item))
                if kind is dict:
                    maps.append((item, tuple(item), tuple(item.values())))
                elif kind is list or kind is set:
                    lists.append((item, tuple(item)))
                elif isinstance(item, type) and not item.__flags__ & immutable_type:
                    classes.append((item, vars(item), tuple(vars(item)), tuple(vars(item).values())))

        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if type(namespace) is dict and id(namespace) not in seen:
                track(namespace)
                for value in list(namespace.values()):
                    track(value)
        return maps, lists, classes

    def settle() -> None:
        """After candidate code: no thread of its own left, and every tracked namespace as it was before."""
        gc_disable()  # no finalizer of the candidate's runs later, in the middle of the tests
        if thread_count():
            raise Refused("sandbox: the candidate left a thread running")
        for mapping, keys, values in maps:
            if len_(mapping) != len_(values) or not all_(map_(is_, mapping.values(), values)):
                mapping.clear()
                mapping.update(zip_(keys, values))
        for items, before in lists:
            if len_(items) != len_(before) or not all_(map_(is_, items, before)):
                items.clear()
                items.update(before) if type_(items) is set else items.extend(before)
        for cls, proxy, keys, values in classes:
            if len_(proxy) != len_(values) or not all_(map_(is_, proxy.values(), values)):
                original = dict_(zip_(keys, values))
                for key in tuple_(proxy):
                    if type_(key) is not str:
                        raise Refused(f"sandbox: a non-str attribute name was added to {cls!r}")
                    if key not in original:
                        del_attr(cls, key)
                for key, value in zip_(keys, values):
                    if proxy.get(key, missing) is not value:
                        set_attr(cls, key, value)

    def guarded(func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            settle()

    def plain(value, depth: int = 0):
        """A fresh copy of `value` if it is built of exactly builtin types (else TypeError): nothing in it can
        run the candidate's code (an __eq__ that is always true), and the candidate keeps no reference to it."""
        kind = type_(value)
        for scalar in scalars:
            if kind is scalar:
                return value
        if depth > 100:
            raise type_error("sandbox: the result is nested too deeply")
        for mapping in dict_like:  # the collections ones compare with dicts as dicts do: copied as plain dicts
            if kind is mapping:
                return {plain(k, depth + 1): plain(v, depth + 1) for k, v in dict_items(value)}
        for container in containers:
            if kind is container:
                return container([plain(item, depth + 1) for item in value])
        raise type_error("sandbox: the candidate returned an object that is not plain builtin data")

    def wrap(func):
        """What the tests call instead of the candidate's function: its code runs inside `guarded` only."""

        def candidate(*args, **kwargs):
            inputs = []
            for arg in (*args, *kwargs.values()):
                try:
                    plain(arg)
                    inputs.append(arg)
                except type_error:
                    pass  # a trusted object of the tests' own (e.g. a class from the MBPP setup code)
            result = guarded(func, *args, **kwargs)
            for arg in inputs:
                plain(arg)  # still plain data after the candidate mutated it in place
            return plain(result)

        return candidate

    def preload(name: str) -> None:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - e.g. `from x import function`: not a module
            pass

    _reliability_guard(os.getcwd())
    with os.fdopen(job_fd, "rb") as pipe:
        job = json.loads(pipe.read())
    token = job.pop("token").encode()
    try:
        setup_code = compile(job["setup"], "setup.py", "exec", dont_inherit=True, optimize=0)
        tests_code = compile(job["tests"], "tests.py", "exec", dont_inherit=True, optimize=0)
        for node in ast.walk(ast.Module([*ast.parse(job["setup"]).body, *ast.parse(job["tests"]).body], [])):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                preload(name)
        for name in preloaded:
            preload(name)
        trusted = {"__name__": "__main__", "__builtins__": dict(builtins.__dict__)}  # private: never patched
        run(setup_code, trusted)
        candidate_code = compile(job["candidate"], "solution.py", "exec", dont_inherit=True)
        proc_dev = stat("/proc").st_dev
        handler, native = refuse("installing a signal handler"), refuse("loading a native module", ImportError)
        replace_everywhere({id(signal.signal): handler, id(_signal.signal): handler})  # gets the frame
        replace_everywhere({id(_imp.create_builtin): native, id(_imp.create_dynamic): native})  # fresh copies
        sys.pycache_prefix = os.getcwd() + "/no-pycache"  # imports compile source: marshal is refused
        maps, lists, classes = snapshot()
        sys.addaudithook(audit)
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        guarded(run, candidate_code, namespace)
        function = guarded(namespace.get, job["entry_point"])
        if function is None:
            raise NameError(f"the candidate defines no {job['entry_point']!r}")
        tests = dict(trusted)
        tests[job["entry_point"]] = wrap(function)
        run(tests_code, tests)
        settle()
    except BaseException as exc:  # noqa: BLE001 - any exception, SystemExit included, is a failure
        token = None
        relaxed.append(True)
        traceback.print_exception(exc)
        exit_now(1)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    write(verdict_fd, token)
    exit_now(0)
