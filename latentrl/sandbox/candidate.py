"""The candidate's process: holds only the candidate's code and the data of one call at a time.

`main` serves the harness over two pipes (`wire`): "load" runs the candidate's source, "call" calls its entry
point on copies of the arguments. Objects of the tests arrive as `Remote` proxies that ask the harness for
their public attributes, calls, items and lengths. Nothing here is trusted after the candidate's code ran
(it can replace any of it): the harness trusts only the data it receives, so this is plumbing, not defence.
`run_script` is the plain variant for whole programs (`host.run_script`). Shipped as source with `wire` and
`guard` (see `host`): standard library only.
"""

from __future__ import annotations

import builtins
import os
import runpy
import sys
import traceback

from latentrl.sandbox.guard import reliability_guard
from latentrl.sandbox.wire import Channel, WireError, decode, encode


class Remote:
    """An object of the tests that stays in the harness; each use is a request over the pipe."""

    __slots__ = ("_handle", "_server")

    def __init__(self, handle: int, server: Server) -> None:
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_server", server)

    def _ask(self, action: str, *args, name: str | None = None, **kwargs):
        return self._server.request(self._handle, action, list(args), kwargs, name)

    def __getattr__(self, name: str):
        return self._ask("getattr", name=name)

    def __call__(self, *args, **kwargs):
        return self._ask("call", *args, **kwargs)

    def __getitem__(self, key):
        return self._ask("getitem", key)

    def __len__(self) -> int:
        return self._ask("len")

    def __iter__(self):
        return iter(self._ask("iter"))

    def __bool__(self) -> bool:
        return self._ask("bool")

    def __repr__(self) -> str:
        return self._ask("repr")

    def __str__(self) -> str:
        return self._ask("str")


class Server:
    """The candidate's end of the channel: answers the harness's calls, asks it about the tests' objects."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.function = None
        self.remotes: dict[int, Remote] = {}  # one proxy per handle, so `is` works as it would in-process

    def request(self, handle: int, action: str, args: list, kwargs: dict, name: str | None):
        message = {"op": "request", "handle": handle, "action": action, "name": name}
        self.channel.send(message | {"args": self._encode(args), "kwargs": self._encode(kwargs)})
        return self.wait()

    def wait(self):
        """Serve calls until the reply to our own request arrives (at the top level: until the pipe closes)."""
        while True:
            message = self.channel.receive()
            op = message.get("op")
            if op == "return":
                return decode(message.get("value"), self._remote)
            if op == "raise":
                kind = getattr(builtins, str(message.get("type")), None)
                kind = kind if isinstance(kind, type) and issubclass(kind, Exception) else RuntimeError
                raise kind(message.get("message"))
            self.channel.send(self.answer(message))

    def answer(self, message: dict) -> dict:
        try:
            if message.get("op") == "load":
                namespace = {"__name__": "__main__", "__builtins__": builtins}
                exec(compile(message["source"], "solution.py", "exec", dont_inherit=True), namespace)
                self.function = namespace.get(message["entry_point"])
                if self.function is None:
                    raise NameError(f"the candidate defines no {message['entry_point']!r}")
                value = None
            elif message.get("op") == "call" and self.function is not None:
                value = self.function(*decode(message["args"], self._remote), **decode(message["kwargs"], self._remote))
            else:
                raise WireError(f"unexpected message {str(message.get('op'))[:100]!r}")
            reply = {"op": "return", "value": self._encode(value)}
        except BaseException as exc:  # noqa: BLE001 - SystemExit included: the harness counts it as a failure
            reply = {"op": "raise", "type": type(exc).__name__, "message": _describe(exc)}
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # the host may kill this process as soon as the harness is done
        return reply

    def _encode(self, value):
        return encode(value, self._export)

    def _export(self, value) -> int:
        if type(value) is Remote:
            return object.__getattribute__(value, "_handle")
        raise TypeError(f"the candidate returned a {type(value).__name__}, which is not plain builtin data")

    def _remote(self, handle: int) -> Remote:
        if handle not in self.remotes:
            self.remotes[handle] = Remote(handle, self)
        return self.remotes[handle]


def _describe(exc: BaseException) -> str:
    """The exception's message, printed to stderr with its traceback (for the evaluator's logs)."""
    try:
        traceback.print_exception(exc)
        return str(exc)[:1000]
    except BaseException:  # noqa: BLE001 - the candidate's own exception class may break str()
        return "(unprintable)"


def main() -> None:
    """argv: the call fd (from the harness) and the reply fd. Serves until the harness closes its end."""
    calls_fd, replies_fd = int(sys.argv[1]), int(sys.argv[2])
    reliability_guard(os.getcwd())
    try:
        Server(Channel(calls_fd, replies_fd)).wait()
    except WireError:
        pass  # the harness is done (or gone)
    os._exit(0)


def run_script() -> None:
    """A whole program (argv: ['-c', 'program.py']) under the guard, as __main__: for `host.run_script`."""
    reliability_guard(os.getcwd())
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
