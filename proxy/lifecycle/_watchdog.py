"""Processes die together: a watchdog that takes regogate's whole process tree down when regogate dies.

``start_watchdog`` runs once, before any child exists. It puts a random session token in regogate's
environment (``REGOGATE_SESSION``), which every process regogate starts inherits, and so do their
children (``npx`` -> ``node``, ``bash -c 'helper & exec server'``), whatever process group or
session they move to. It then starts a small watchdog in a session of its own that holds only the
read end of a pipe; regogate holds the write end. When regogate ends, however it ends (SIGKILL
included), the kernel closes the pipe; the watchdog sees end-of-file, SIGKILLs every process whose
initial environment carries the token (read from ``/proc/<pid>/environ``) until none is left, removes
stale private directories, and exits.

Direct children also get ``PR_SET_PDEATHSIG`` (``death_signal_hook``), so they go at once.

Limits: Linux only (``/proc``); a descendant that execs with an emptied environment (``env -i``)
carries no token and escapes the sweep; a process of another user cannot be signalled.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Final

from regogate.proxy.lifecycle import _watchdog_process
from regogate.proxy.lifecycle._watchdog_process import SESSION_ENV, kill_session, session_processes

__all__ = ["SESSION_ENV", "death_signal_hook", "group_alive", "kill_session", "session_processes", "start_watchdog"]

_PR_SET_PDEATHSIG: Final = 1


def death_signal_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGKILL the child when regogate dies (Linux), else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # regogate died between fork and prctl
            os._exit(1)

    return hook


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a member that is not a zombie (zombies wait on a parent to reap them)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        names = os.listdir("/proc")
    except OSError:
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] != b"Z":
            return True
    return False


#: The watchdog while regogate lives: ``/bin/sh`` blocked reading the pipe on its stdin (about 2 MB
#: resident, against 10 MB for an idle Python), deaf to the signals a terminal or a host sends to the
#: group; at end of file it becomes ``python -I -S _watchdog_process.py``, which kills and sweeps.
WAIT_THEN_SWEEP: Final = 'trap "" INT TERM HUP PIPE; while read -r _; do :; done; exec "$0" -I -S "$1"'
#: Where there is no shell (a distroless image), Python does the waiting too (``--wait``).
SHELL = "/bin/sh"


def start_watchdog() -> str:
    """Tag regogate's environment with a new session token and start the watchdog; return the token.

    Call once, before any child process exists. Where there is no ``/proc``, only the token is set
    (children still get ``death_signal_hook``). The watchdog (``WAIT_THEN_SWEEP``, or Python alone
    where there is no ``SHELL``) runs in a session of its own, the pipe's read end on its stdin.
    """
    token = secrets.token_hex(16)
    os.environ[SESSION_ENV] = token
    if not (sys.platform.startswith("linux") and os.path.isdir("/proc")):
        return token
    script = _watchdog_process.__file__
    if os.access(SHELL, os.X_OK):
        argv = [SHELL, "-c", WAIT_THEN_SWEEP, sys.executable, script]
    else:
        argv = [sys.executable, "-I", "-S", script, "--wait"]
    read_fd, write_fd = os.pipe()  # not inheritable: no other child regogate spawns holds either end
    try:
        subprocess.Popen(
            argv,
            stdin=read_fd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a signal to regogate's process group does not reach the watchdog
        )
    except OSError:
        os.close(write_fd)
    finally:
        os.close(read_fd)
    # ``write_fd`` is never written to and never closed here: the kernel closes it when regogate ends.
    return token
