"""The trusted harness: runs a job's tests in its own sandboxed process and alone decides the verdict.

The candidate runs in another process (another uid where the evaluator is root) and is reached only through
`CandidateProxy`: each call sends the arguments as data (`wire`: so they are copies the candidate cannot
empty) and gets back a fresh plain value or a failure. Objects of the tests that the candidate is given
(callables, MBPP's tree nodes) stay here; the candidate holds numbered handles and asks for their public
attributes, calls, items and lengths. This process makes itself non-dumpable before the candidate's code
exists, so the candidate cannot read its memory, open its /proc files or trace it even under the same uid.

Verdict, written once to the host's pipe with the host's token: "passed" iff the tests ran to their end and
no call into the candidate failed (a failure is sticky: tests that swallow exceptions, e.g. a StopIteration
ending `all(map(...))`, cannot hide it); "error" iff the trusted setup or tests cannot run (not the
candidate's fault); else "failed". Shipped as source with `wire` (see `host`): standard library only.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import sys
import traceback

from latentrl.sandbox.wire import Channel, WireError, decode, encode

MAX_ITEMS = 1_000_000  # items of a tests' iterable the candidate may ask for at once
_PR_SET_DUMPABLE = 4


class CandidateFailed(BaseException):
    """A call into the candidate did not return a value: it raised, died, broke the protocol or sent non-data.

    A BaseException, so the tests' `except Exception` does not catch it (and the harness remembers it anyway).
    """


class CandidateProxy:
    """The harness's end of the candidate: calls it by message and serves its requests on the tests' objects."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.failures: list[str] = []
        self.handles: dict[int, object] = {}  # handle -> object of the tests the candidate was given
        self.exported: dict[int, int] = {}  # id(object) -> handle (the object is kept alive in `handles`)

    def load(self, source: str, entry_point: str) -> None:
        self._ask({"op": "load", "source": source, "entry_point": entry_point})

    def function(self, name: str):
        """What the tests call by the entry point's name."""

        def candidate(*args, **kwargs):
            return self._ask({"op": "call", "args": self._encode(list(args)), "kwargs": self._encode(kwargs)})

        candidate.__name__ = candidate.__qualname__ = name
        return candidate

    def _ask(self, message: dict):
        """Send a call and wait for its answer, serving the candidate's requests (it may call back) meanwhile."""
        try:
            self.channel.send(message)
            while True:
                reply = self.channel.receive()
                op = reply.get("op")
                if op == "return":
                    return decode(reply.get("value"), self._resolve)
                if op == "raise":
                    raise CandidateFailed(f"the candidate raised {str(reply.get('type'))[:100]}: "
                                          f"{str(reply.get('message'))[:1000]}")  # fmt: skip
                if op != "request":
                    raise WireError(f"unexpected message {str(op)[:100]!r}")
                self.channel.send(self._serve(reply))
        except CandidateFailed as exc:
            self.failures.append(str(exc))
            raise
        except BaseException as exc:  # noqa: BLE001 - WireError, or e.g. MemoryError building a huge reply
            self.failures.append(f"the candidate broke the protocol or died: {exc!r}"[:2000])
            raise CandidateFailed(self.failures[-1]) from None

    def _serve(self, request: dict) -> dict:
        """Do what the candidate asked of one of the tests' objects; its exception goes back as a message."""
        try:
            target = self._resolve(request.get("handle"))
            action = request.get("action")
            args = decode(request.get("args", {"list": []}), self._resolve)
            kwargs = decode(request.get("kwargs", {"dict": []}), self._resolve)
            if type(args) is not list or type(kwargs) is not dict or not all(type(k) is str for k in kwargs):
                raise WireError("malformed arguments")
            if action == "getattr":
                name = request.get("name")
                if type(name) is not str or name.startswith("_"):
                    raise AttributeError(f"{str(name)[:100]!r}: private attributes of the tests' objects are "
                                         "out of the candidate's reach")  # fmt: skip
                value = getattr(target, name)
            elif action == "call":
                value = target(*args, **kwargs)
            elif action == "getitem" and len(args) == 1:
                value = target[args[0]]
            elif action == "len":
                value = len(target)
            elif action == "iter":
                value = list(itertools.islice(target, MAX_ITEMS + 1))
                if len(value) > MAX_ITEMS:
                    raise ValueError(f"more than {MAX_ITEMS} items")
            elif action == "bool":
                value = bool(target)
            elif action in ("repr", "str"):
                value = repr(target) if action == "repr" else str(target)
            else:
                raise WireError(f"unknown request {str(action)[:100]!r}")
            return {"op": "return", "value": self._encode(value)}
        except WireError:
            raise
        except Exception as exc:  # noqa: BLE001 - the tests' object raised: the candidate sees the exception
            return {"op": "raise", "type": type(exc).__name__, "message": str(exc)[:1000]}

    def _encode(self, value):
        return encode(value, self._export)

    def _export(self, value) -> int:
        handle = self.exported.get(id(value))
        if handle is None:
            handle = self.exported[id(value)] = len(self.handles)
            self.handles[handle] = value
        return handle

    def _resolve(self, handle) -> object:
        if type(handle) is not int or handle not in self.handles:
            raise WireError("a handle the harness never gave out")
        return self.handles[handle]


def run_job(job: dict, proxy: CandidateProxy) -> tuple[str, str]:
    """(verdict, reason) of the job's tests on the candidate behind `proxy`."""
    try:
        setup = compile(job["setup"], "setup.py", "exec", dont_inherit=True)
        tests = compile(job["tests"], "tests.py", "exec", dont_inherit=True)
        trusted = {"__name__": "__main__"}
        exec(setup, trusted)
    except BaseException as exc:  # noqa: BLE001 - SystemExit included: the trusted side is broken
        traceback.print_exception(exc)
        return "error", f"the trusted setup or tests do not run: {exc!r}"[:2000]
    try:
        proxy.load(job["candidate"], job["entry_point"])
        namespace = dict(trusted)
        namespace[job["entry_point"]] = proxy.function(job["entry_point"])
        exec(tests, namespace)
    except BaseException as exc:  # noqa: BLE001 - an assertion, the candidate's failure, an early exit: failed
        traceback.print_exception(exc)
        return "failed", f"{type(exc).__name__}: {exc}"[:2000]
    if proxy.failures:
        print(f"the tests went on after the candidate failed: {proxy.failures[0]}", file=sys.stderr)
        return "failed", proxy.failures[0][:2000]
    return "passed", ""


def make_undumpable() -> None:
    """PR_SET_DUMPABLE 0: the candidate (even under this uid) cannot ptrace this process or open its /proc files."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def main() -> None:
    """argv: job fd, verdict fd, the candidate's call and reply fds. Writes one verdict, then exits 0."""
    job_fd, verdict_fd, calls_fd, replies_fd = (int(arg) for arg in sys.argv[1:5])
    with os.fdopen(job_fd, "rb") as pipe:
        job = json.loads(pipe.read())
    try:
        make_undumpable()
        verdict, reason = run_job(job, CandidateProxy(Channel(replies_fd, calls_fd)))
    except BaseException as exc:  # noqa: BLE001 - the harness's own machinery failed: not the candidate's fault
        traceback.print_exception(exc)
        verdict, reason = "error", f"harness: {exc!r}"[:2000]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - the output file may be over its size limit
            pass
    os.write(verdict_fd, json.dumps({"token": job["token"], "verdict": verdict, "reason": reason}).encode())
    os._exit(0)
