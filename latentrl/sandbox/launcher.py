"""The privileged launcher: the first code of every sandboxed process, run by a fresh interpreter as root
(or as the evaluator's user), which sets the limits, namespaces and uid and then execs the process proper.

Reports what it applied (or why it failed) as a JSON line on a pipe that closes at exec, so the sandboxed
code can neither see nor forge it. A layer the kernel refuses is reported, not fatal. In the mount namespace
/proc is a fresh procfs with hidepid=invisible: after the uid drop, a process sees no process but its own
uid's (not the harness, not the evaluator). Shipped as source (see `host`): standard library only.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import stat


def launch(config: dict) -> None:
    """Limits, namespaces, uid drop, then exec `config["argv"]` (module docstring)."""
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
            applied["mountns"] = libc.unshare(clone_newns) == 0 and mount_view(libc, config["hide"], config["keep"])
            if applied["mountns"] or all(reachable(path) for path in config["keep"]):
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


def reachable(path: str) -> bool:
    """Whether an unrelated uid can traverse every directory above `path` (used only by the launcher)."""
    parent = os.path.dirname(path)
    while parent != "/":
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(parent)
    return True


def mount_view(libc, hide: list[str], keep: list[str]) -> bool:
    """In a fresh mount namespace: cover `hide` and untraversable ancestors of `keep` with an empty read-only
    tmpfs, then bind each needed child back, so `keep` resolves at its own path and nothing else there does.

    Returns False (having mounted nothing) if propagation cannot be made private: a mount made before
    that would leak into the evaluator's namespace.
    """
    ms_rdonly, ms_nosuid, ms_nodev, ms_noexec, ms_remount = 1, 2, 4, 8, 32
    ms_bind, ms_rec, ms_private = 4096, 16384, 1 << 18

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
    mount("proc", "/proc", "proc", ms_nosuid | ms_nodev | ms_noexec, "hidepid=invisible")  # own uid's pids only
    return True
