"""The only language the harness and the candidate share: length-prefixed JSON frames of tagged builtin data.

Never pickle (unpickling runs code) and never objects: a value crosses the pipe as data and is rebuilt from
builtin types on the other side, so nothing the candidate sends can run code in the harness (no `__eq__` of
its own, no shared list it could empty later). Both sides get this module as source (see `host`), so it
imports only the standard library.

Encoding: None, bool, str and ints below 2**53 and finite floats are JSON themselves; every other value is a
one-key object naming its type: {"int": hex}, {"float": "nan"}, {"complex": [re, im]}, {"bytes": base64},
{"list"|"tuple"|"set"|"frozenset": [items]}, {"dict": [[key, value], ...]}, and {"handle": n} for an object
that stays on the harness's side (a callable or object of the tests, reached through a proxy).
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable

MAX_FRAME = 32 * 1024 * 1024  # bytes in one message: a flood beyond it is a protocol error
MAX_DEPTH = 100  # nesting of containers
_EXACT_JSON = 1 << 53  # ints beyond it are tagged (JSON readers elsewhere round them through floats)
_SEQUENCES = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}
_DICTS = (dict, Counter, OrderedDict, defaultdict)  # the collections ones compare with dicts as dicts do
_BUILD = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}


class WireError(Exception):
    """A message that is not well-formed data (too big, too deep, unknown tag, unhashable key, closed pipe)."""


def encode(value, export: Callable[[object], int], depth: int = 0):
    """`value` as JSON-able data; anything that is not plain builtin data goes to `export` (which may refuse)."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if -_EXACT_JSON < value < _EXACT_JSON else {"int": hex(value)}
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if depth > MAX_DEPTH:
        raise WireError("the value is nested too deeply")
    if kind is complex:
        return {"complex": [encode(value.real, export), encode(value.imag, export)]}
    if kind is bytes:
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if kind in _SEQUENCES:
        return {_SEQUENCES[kind]: [encode(item, export, depth + 1) for item in value]}
    if kind in _DICTS:
        return {"dict": [[encode(k, export, depth + 1), encode(v, export, depth + 1)] for k, v in dict.items(value)]}
    return {"handle": export(value)}


def decode(data, resolve: Callable[[int], object], depth: int = 0):
    """The value `encode` described, built afresh from builtin types; handles go to `resolve`."""
    kind = type(data)
    if data is None or kind is bool or kind is str or kind is int or kind is float:
        return data
    if kind is not dict or len(data) != 1 or depth > MAX_DEPTH:
        raise WireError("malformed value")
    ((tag, body),) = data.items()
    try:
        if tag in _BUILD and type(body) is list:
            return _BUILD[tag](decode(item, resolve, depth + 1) for item in body)
        if tag == "dict" and type(body) is list:
            return {decode(k, resolve, depth + 1): decode(v, resolve, depth + 1) for k, v in body}
        if tag == "int" and type(body) is str:
            return int(body, 16)
        if tag == "float" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "complex" and type(body) is list and len(body) == 2:
            real, imag = (decode(part, resolve, depth + 1) for part in body)
            if type(real) is float and type(imag) is float:
                return complex(real, imag)
        if tag == "bytes" and type(body) is str:
            return base64.b64decode(body, validate=True)
        if tag == "handle" and type(body) is int:
            return resolve(body)
    except (TypeError, ValueError) as exc:  # an unhashable key or set item, a bad number, bad base64
        raise WireError(f"malformed {tag}: {exc}") from None
    raise WireError(f"malformed value tagged {tag!r}")


class Channel:
    """One end of a pair of pipes carrying messages (JSON objects) as 4-byte length + UTF-8 frames."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd

    def send(self, message: dict) -> None:
        data = json.dumps(message, allow_nan=False, separators=(",", ":")).encode()
        if len(data) > MAX_FRAME:
            raise WireError(f"a message of {len(data)} bytes is over the limit")
        view = memoryview(len(data).to_bytes(4, "big") + data)
        while view:
            try:
                view = view[os.write(self.write_fd, view) :]
            except OSError as exc:  # the other side is gone
                raise WireError(f"cannot send: {exc.strerror}") from None

    def receive(self) -> dict:
        size = int.from_bytes(self._read(4), "big")
        if size > MAX_FRAME:
            raise WireError(f"a message of {size} bytes is over the limit")
        try:
            message = json.loads(self._read(size))
        except (ValueError, RecursionError) as exc:
            raise WireError(f"unreadable message: {exc}") from None
        if type(message) is not dict:
            raise WireError("a message must be a JSON object")
        return message

    def _read(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = os.read(self.read_fd, min(left, 1 << 20))
            if not chunk:
                raise WireError("the other side closed the pipe")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
