"""Small helpers for supervising child processes of the local fleet."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A preexec_fn that makes the child get SIGTERM when the process that started it dies.

    This is what keeps a crashed or SIGKILLed test session from leaving apiservers and
    Postgres running with their ports held. Linux ties the parent-death signal to the *thread*
    that forked, so it is only armed when forking from the main thread: a pooled worker
    thread exiting would otherwise kill a healthy fleet. (The controlplane binary also watches
    its parent itself, so it never outlives us either way.)
    """
    arm = threading.current_thread() is threading.main_thread()

    def _preexec() -> None:
        if arm:
            try:
                libc = ctypes.CDLL("libc.so.6", use_errno=True)
                libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            except OSError:  # not Linux: best effort only
                pass
        os.setpgrp()

    return _preexec


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether a server could listen on `port` of loopback now.

    The probe sets SO_REUSEADDR as servers do (Postgres, Go's net.Listen): connections of a
    stopped server that linger in TIME_WAIT do not make the port "in use"; a listener does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def terminate(proc: subprocess.Popen[bytes] | subprocess.Popen[str], *, grace: float) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; always reap."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def tail(path: Path, n: int = 20) -> str:
    """The last `n` lines of a log file, indented, for error messages."""
    try:
        lines = path.read_text(errors="replace").rstrip().splitlines()
    except OSError as exc:
        return f"    (no log at {path}: {exc})"
    return "\n".join("    " + line for line in lines[-n:])


def child_pids(pid: int) -> list[int]:
    """The live children of process `pid` (Linux: read from /proc)."""
    children = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(stat_file.parent.name))
    return children


def gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting to be reaped counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"
