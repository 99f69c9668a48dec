"""The reliability guard: inside the candidate's process, make the easy ways to hurt the host raise.

A second layer only, never a defence a verdict depends on: code that means harm bypasses it (posix, _io,
ctypes). It turns careless or accidental damage into an exception, and covers sockets when the kernel grants
no network namespace. Shipped as source to the candidate's process (see `host`): standard library only.
"""

from __future__ import annotations

import _posixsubprocess
import builtins
import errno
import functools
import io
import os
import shutil
import socket
import subprocess


def reliability_guard(root: str) -> None:
    """Anything may be done inside `root` and read anywhere except other processes' /proc entries."""
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
