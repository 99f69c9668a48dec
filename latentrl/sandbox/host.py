"""The evaluator's side of the sandbox: starts sandboxed processes, waits, kills, and reads the verdict.

`grade` runs two processes per job, each started by the privileged `launcher` (limits, namespaces, its own
uid where the evaluator is root), and writes nothing to disk: the trusted `harness` gets the job (tests,
setup, the candidate's source, a 128-bit token) on a pipe and the `candidate` process gets only the
candidate's source, from the harness, and one call at a time. The harness alone writes the verdict, with
the token, to a pipe only it holds; a pass needs that verdict and the harness's clean exit. The candidate's
output, its exit status and anything it writes decide nothing. A sandbox that cannot start (a launcher
error, trusted tests that do not run) is status "error": never a verdict on the candidate.

`run_script` runs a whole program in one sandboxed process and reports how it ended; it exists for the
sandbox's own tests and `probe_layers`. The package docstring gives the threat model.
"""

from __future__ import annotations

import contextlib
import ctypes
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
from types import ModuleType

from latentrl.sandbox import candidate, guard, harness, launcher, wire

log = logging.getLogger(__name__)

OUTPUT_CHARS = 2000  # tail of stdout/stderr kept in an ExecResult
VERDICT_BYTES = 65536  # the harness's verdict: one JSON object (its reason is at most 2000 characters)
_UID_BASE = 1 << 30  # far above system and container (subuid) ranges; pid < 2**22, so uids stay < 2**31
_UID_SLOTS = 64  # concurrent sandboxed processes per evaluator process (a graded job takes two)
_HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm")  # world-writable: replaced by empty tmpfs in the sandbox
_PR_SET_DUMPABLE = 4


class CodeExecutionNotAllowed(RuntimeError):
    """Running generated code was not switched on for this process."""


class SandboxError(RuntimeError):
    """The sandbox itself could not start; never a verdict on the program (`grade` reports it as "error")."""


_enabled = False


def enable_code_execution() -> None:
    """Process-wide opt-in (the --allow-code-execution flag): running model-written code is a decision.

    Without root the sandboxed processes run as this process's user, so this process becomes non-dumpable:
    they can then neither trace it nor read its memory or /proc files (where the jobs and tokens are).
    """
    global _enabled
    if os.geteuid() != 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed: cannot protect the evaluator")
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
    """Per sandboxed process (a graded job has two: the harness and the candidate); the timeout is per job."""

    timeout_s: float = 10.0  # wall clock; every process of the job is killed after it
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
    """How a graded job ended. status: "passed" | "failed" | "timeout" | "killed" (the harness, by a signal) |
    "error" (the sandbox could not grade: not the candidate's fault, so neither right nor wrong)."""

    status: str
    returncode: int | None  # the harness's; negative: killed by that signal number
    stdout: str  # the candidate's, last OUTPUT_CHARS characters
    stderr: str  # the candidate's, then the harness's (its traceback says why a job failed)
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class ProcessResult:
    """How a program run by `run_script` ended; no verdict (exit status 0 proves nothing about a program)."""

    returncode: int  # negative: killed by that signal number (a timeout kills with SIGKILL)
    timed_out: bool
    stdout: str  # last OUTPUT_CHARS characters
    stderr: str
    seconds: float


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


def grade(job: TestJob, limits: Limits = Limits()) -> ExecResult:
    """Run the job's tests on its candidate in the sandbox; "passed" only on the harness's verdict (module doc)."""
    _require_enabled()
    try:
        return _grade(job, limits)
    except SandboxError as exc:
        log.warning("sandbox: %s", exc)
        return ExecResult("error", None, "", str(exc)[-OUTPUT_CHARS:], 0.0)


def grade_many(jobs: list[TestJob], limits: Limits = Limits(), workers: int | None = None) -> list[ExecResult]:
    """`grade` for many jobs concurrently (threads that each wait on one job); results in input order."""
    _require_enabled()
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=workers or min(len(jobs), os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda job: grade(job, limits), jobs))


def run_script(source: str, limits: Limits = Limits(), *, guard: bool = True) -> tuple[ProcessResult, dict]:
    """Run `source` as a whole program in one sandboxed process; also returns what the launcher applied.

    guard=False leaves out the in-process guard (tests of the OS layers alone). Raises SandboxError if the
    sandbox cannot start.
    """
    _require_enabled()
    return _run_script(source, limits, guard)


@functools.cache
def probe_layers() -> Layers:
    """Which OS layers this machine grants, found by running an empty (trusted) program once."""
    _, applied = _run_script("", Limits(timeout_s=60), True)
    return Layers(
        uid_drop=applied.get("uid") is not None,
        mount_namespace=bool(applied.get("mountns")),
        network_namespace=bool(applied.get("netns")),
    )


# --- one program, one graded job -------------------------------------------------------------------------


def _run_script(source: str, limits: Limits, guard: bool) -> tuple[ProcessResult, dict]:
    with (
        _sandbox_uids(1) as (uid,),
        _workdir(uid) as workdir,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        with open(os.path.join(workdir, "program.py"), "w", encoding="utf-8") as fh:
            fh.write(source)
        argv = [*_python(), "-c", _script_source(), "program.py"] if guard else [*_python(), "program.py"]
        start = time.monotonic()
        child = _start(_launcher_config(workdir, uid, limits, argv), (), out, err)
        timed_out = _finish([child], [uid], start + limits.timeout_s)
        seconds = time.monotonic() - start
        applied = _check_report(child, timed_out, err)
        result = ProcessResult(child.proc.returncode, timed_out, _tail(out), _tail(err), seconds)
    return result, applied


def _grade(job: TestJob, limits: Limits) -> ExecResult:
    token = secrets.token_hex(16)
    message = json.dumps({"token": token, **dataclasses.asdict(job)}).encode()
    with (
        _sandbox_uids(2) as (harness_uid, candidate_uid),
        _workdir(harness_uid) as harness_dir,
        _workdir(candidate_uid) as candidate_dir,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as harness_log,
    ):
        job_r, job_w = os.pipe()
        verdict_r, verdict_w = os.pipe()
        calls_r, calls_w = os.pipe()  # harness -> candidate
        replies_r, replies_w = os.pipe()  # candidate -> harness
        candidate_fds, harness_fds = (calls_r, replies_w), (job_r, verdict_w, calls_w, replies_r)
        harness_argv, candidate_argv = [*_python(), "-c", _harness_source()], [*_python(), "-c", _candidate_source()]
        harness_config = _launcher_config(harness_dir, harness_uid, limits, harness_argv)
        candidate_config = _launcher_config(candidate_dir, candidate_uid, limits, candidate_argv)
        start = time.monotonic()
        children: list[_Child] = []
        try:
            children.append(_start(harness_config, harness_fds, harness_log, harness_log))
            children.append(_start(candidate_config, candidate_fds, out, err))
        except OSError as exc:
            for child in children:
                _kill_group(child.proc.pid)
                child.proc.wait()
                os.close(child.report)
            os.close(job_w)
            os.close(verdict_r)
            raise SandboxError(f"cannot start a sandboxed process: {exc}") from exc
        finally:
            for fd in (*candidate_fds, *harness_fds):
                os.close(fd)  # only the children hold these ends: a dead child's pipe reads as closed
        with os.fdopen(job_w, "wb") as sender:
            writer = threading.Thread(target=_send, args=(sender, message), daemon=True)
            writer.start()
            timed_out = _finish(children, [harness_uid, candidate_uid], start + limits.timeout_s)
            writer.join()  # the readers are dead, so a blocked write has failed by now
        seconds = time.monotonic() - start
        with os.fdopen(verdict_r, "rb") as pipe:
            verdict, reason = _parse_verdict(pipe.read(VERDICT_BYTES), token)
        harness_proc = children[0].proc
        _check_report(children[0], timed_out, harness_log)
        _check_report(children[1], timed_out or verdict in ("error", None), err)
        stdout, stderr = _tail(out), _tail(err) + _tail(harness_log)
    if verdict == "error" and not timed_out:
        raise SandboxError(f"the harness could not grade: {reason}")
    if timed_out:
        status = "timeout"
    elif harness_proc.returncode < 0:
        status = "killed"
    else:
        status = "passed" if verdict == "passed" and harness_proc.returncode == 0 else "failed"
    return ExecResult(status, harness_proc.returncode, stdout, stderr, seconds)


def _parse_verdict(data: bytes, token: str) -> tuple[str | None, str]:
    """(verdict, reason) if `data` is exactly one verdict object carrying the token, else (None, why not)."""
    try:
        verdict = json.loads(data)
    except ValueError:
        return None, "no verdict from the harness"
    if type(verdict) is not dict or verdict.get("token") != token:
        return None, "a verdict without the token"
    return verdict.get("verdict"), str(verdict.get("reason", ""))


def _send(pipe, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the harness may exit (or be killed) without reading it all
        pipe.write(data)
        pipe.close()


# --- sandboxed processes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Child:
    proc: subprocess.Popen
    report: int  # read end of the launcher's report pipe


def _start(config: dict, fds: tuple[int, ...], out, err) -> _Child:
    """Start the launcher (a fresh interpreter) in a new session; it keeps `fds` and its report pipe only."""
    report_r, report_w = os.pipe()
    config["report_fd"] = report_w
    config["argv"] = [*config["argv"], *map(str, fds)]  # the process finds its pipes by these numbers
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _launcher_source(), json.dumps(config)],
            cwd=config["workdir"],
            env=_child_env(config["workdir"]),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            pass_fds=(report_w, *fds),
            start_new_session=True,
        )
    except BaseException:
        os.close(report_r)
        raise
    finally:
        os.close(report_w)
    return _Child(proc, report_r)


def _finish(children: list[_Child], uids: list[int | None], deadline: float) -> bool:
    """Wait for the first child until the deadline, then kill every child's group (and uid); True if timed out."""
    timed_out = False
    try:
        children[0].proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        for child in children:
            _kill_group(child.proc.pid)  # on timeout; and children that outlived a finished program
        for child in children:
            child.proc.wait()
        for uid in uids:
            if uid is not None:
                _kill_uid(uid)  # processes that left the group with setsid()
    return timed_out


def _check_report(child: _Child, excused: bool, err) -> dict:
    """What the launcher applied; SandboxError if it failed (or wrote nothing, unless `excused`: killed early)."""
    with os.fdopen(child.report, "rb") as pipe:
        applied = _parse_report(pipe.read())
    if "error" in applied or not (applied or excused):
        detail = applied.get("error", "no report from the launcher")
        raise SandboxError(f"sandbox setup failed: {detail}; {_tail(err)}")
    if os.geteuid() == 0 and applied and applied.get("uid") is None:
        _warn_once("sandbox: root, but no uid drop (interpreter unreachable by other uids and no mount namespace)")
    return applied


def _python() -> list[str]:
    return [sys.executable, "-I", "-B"]


def _launcher_config(workdir: str, uid: int | None, limits: Limits, argv: list[str]) -> dict:
    keep = [sys.executable, os.path.dirname(sys.executable), sys.prefix, sys.exec_prefix]
    keep += [sys.base_prefix, sys.base_exec_prefix, workdir]
    return {
        "argv": argv,
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


# --- what the children run: these modules' source, never this package (or its imports) ----------------


@functools.cache
def _launcher_source() -> str:
    return _source_of(launcher) + "launch(json.loads(__import__('sys').argv[1]))\n"


@functools.cache
def _harness_source() -> str:
    return _source_of(wire, harness) + "main()\n"


@functools.cache
def _candidate_source() -> str:
    return _source_of(wire, guard, candidate) + "main()\n"


@functools.cache
def _script_source() -> str:
    return _source_of(wire, guard, candidate) + "run_script()\n"


def _source_of(*modules: ModuleType) -> str:
    """The modules' source joined into one program; their imports of each other are dropped (already defined)."""
    lines = ["from __future__ import annotations"]
    for module in modules:
        for line in inspect.getsource(module).splitlines():
            if not line.startswith(("from __future__ import", "from latentrl.sandbox")):
                lines.append(line)
    return "\n".join(lines) + "\n\n"


# --- uids, directories, killing -------------------------------------------------------------------------


_slots = threading.Condition()
_busy_slots: set[int] = set()


def _reset_slots_in_child() -> None:
    """A forked evaluator has a new pid (hence new uids) and none of the threads that held slots or the lock."""
    global _slots
    _slots = threading.Condition()
    _busy_slots.clear()


os.register_at_fork(after_in_child=_reset_slots_in_child)


@contextlib.contextmanager
def _sandbox_uids(count: int) -> Iterator[list[int | None]]:
    """`count` uids no other live sandbox uses (None each when not root): files, signals and process count
    of their own, so a job's candidate cannot touch its harness. Derived from the evaluator's pid, so
    data-parallel evaluator processes never share one.
    """
    if os.geteuid() != 0:
        yield [None] * count
        return
    slots = _claim_slots(count)
    try:
        yield [_slot_uid(slot) for slot in slots]
    finally:
        with _slots:
            _busy_slots.difference_update(slots)
            _slots.notify_all()


def _slot_uid(slot: int) -> int:
    return _UID_BASE + os.getpid() * _UID_SLOTS + slot


def _claim_slots(count: int, patience_s: float = 5.0) -> list[int]:
    """`count` free slots at once (never some now and the rest later: threads would deadlock), each with a
    uid that owns no process at all, zombies included.

    Killed processes stay zombies until init reaps them (seconds, on some machines) and count against
    RLIMIT_NPROC meanwhile: reusing that uid at once would make the next program fail to start a thread.
    Live processes on a free slot are strays (e.g. of a crashed evaluator that had this pid): killed here.
    """
    deadline = time.monotonic() + patience_s
    with _slots:
        while True:
            free = [slot for slot in range(_UID_SLOTS) if slot not in _busy_slots]
            if len(free) >= count:
                processes = list(_processes())
                live = {uid for _, uid, state in processes if state != "Z"}
                for slot in free:
                    if _slot_uid(slot) in live:
                        _kill_uid(_slot_uid(slot))
                owners = {uid for _, uid, _ in processes}
                clean = [slot for slot in free if _slot_uid(slot) not in owners]
                if len(clean) >= count or time.monotonic() > deadline:
                    if len(clean) < count:
                        log.warning("sandbox: no uid without zombies after %.0f s; reusing one", patience_s)
                    slots = (clean + [slot for slot in free if slot not in clean])[:count]
                    _busy_slots.update(slots)
                    return slots
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
