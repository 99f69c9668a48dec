"""Run untrusted Python (model-written code) and grade it without letting it decide its own verdict.

Generated code never runs in the evaluator or trainer process. Trust domains, one module each:
- `host` (the evaluator): starts the sandboxed processes, enforces the wall clock, reads the verdict.
- `launcher` (privileged, first code of each sandboxed process): limits, namespaces, uid drop, then exec.
- `harness` (trusted, sandboxed): the tests, their setup and expected values; calls the candidate by message
  and alone decides the verdict.
- `candidate` (untrusted, sandboxed): the candidate's code and the data of one call at a time.
- `guard` (inside the candidate's process): turns careless damage into exceptions; a convenience, not a wall.
- `wire`: the plain-data encoding between harness and candidate (never pickle).

Threat model. The candidate is an adversary that wants a "passed" without solving the task (RL policies
learn to: early exits, always-equal objects, patched test runners, spoofed output) or wants to harm the
machine. What makes a verdict unforgeable:
- The candidate's process holds nothing worth forging: no token, no tests, no expected values, no object of
  the tests. Arguments reach it as copies over a pipe; results come back as data of builtin types, rebuilt
  by the harness (`wire`), so no `__eq__`, `__del__` or shared state of the candidate's ever runs there.
  Objects the tests hand it stay in the harness behind handles: the candidate may use their public
  attributes, call them, index and iterate them (private names are refused, so no `__globals__` or
  `__closure__`). A raised exception (StopIteration, SystemExit included), a death, a hang, a flood, a
  malformed or oversized message or a non-data result is a failure that stays recorded even if the tests
  swallow the exception.
- The candidate cannot reach the harness: as root, each process of a job has its own uid (so no signals,
  ptrace, /proc/<pid>/mem or fd access across them) and a private procfs (hidepid=invisible: it sees only
  its own uid's processes); the harness also makes itself non-dumpable (no ptrace or /proc access even
  under the same uid). Without root (same uid), the harness and the evaluator are non-dumpable, so the
  candidate can still kill the harness (a failure, never a pass) but not read or trace it.
- The verdict pipe exists only in the harness; the verdict must carry the host's token and the harness must
  exit 0. The candidate's output and exit status decide nothing.
Layers around every sandboxed process (`probe_layers()` says which this machine grants): rlimits (CPU,
address space, processes, file size, open files, no core) and a wall clock after which every process of the
job is SIGKILLed; a new session, killed as a group, and (as root) every process of its uid killed too; as
root a uid of its own (1<<30 + pid*64 + slot, no supplementary groups, never reused while a zombie holds
it), PR_SET_NO_NEW_PRIVS, a private mount namespace in which /tmp, /var/tmp and /dev/shm are empty
read-only tmpfs and untraversable ancestors of the interpreter are covered; a new network namespace (no
interfaces: even 127.0.0.1 is unreachable; without root, inside a new user namespace if the kernel allows).
What it does NOT protect against: there is no seccomp filter, so every system call is reachable and the
kernel is the attack surface (a kernel or CPython exploit is out of scope); no PID namespace (as root the
private procfs hides other uids' processes, their pids stay signal-proof only by uid); no cgroup, so disk
I/O and the memory of page cache or kernel objects are not limited; timing is observable. Without root
there is no uid drop and no mount namespace: the candidate runs as the evaluator's user, can read that
user's files, write to world-writable directories and signal the evaluator (a denial, not a forged pass),
with only the guard in the way (and RLIMIT_NPROC counts all of that user's processes). World-readable files
stay readable. Objects the tests pass to the candidate can be used by it as any callee could (e.g. a
callable with side effects in the tests). The candidate-side audit hook and module snapshot/restore of the
earlier in-process design are gone: no verdict depended on them any more.
"""

from latentrl.sandbox.host import (
    CodeExecutionNotAllowed,
    ExecResult,
    Layers,
    Limits,
    ProcessResult,
    SandboxError,
    TestJob,
    code_execution_enabled,
    enable_code_execution,
    grade,
    grade_many,
    probe_layers,
    run_script,
)

__all__ = [
    "CodeExecutionNotAllowed",
    "ExecResult",
    "Layers",
    "Limits",
    "ProcessResult",
    "SandboxError",
    "TestJob",
    "code_execution_enabled",
    "enable_code_execution",
    "grade",
    "grade_many",
    "probe_layers",
    "run_script",
]
