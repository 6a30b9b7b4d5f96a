"""The watchdog process's program: wait for regogate to end, then kill its session and sweep.

It runs as ``python -I -S <this file> FD`` for as long as regogate lives, so until regogate is
gone it holds nothing but the interpreter and the smallest standard modules: an interpreter that
imported regogate's package for this kept 19 MB resident beside each regogate (8 MB bare) and
spent a few hundred ms of CPU next to regogate's own start-up. The killing needs only ``os``; the
private-directory sweep needs regogate's package, so the site directories (where regogate is
installed) are set up once the session is dead. ``_watchdog`` imports the functions from here.
"""

from __future__ import annotations

import os
import signal
import sys
import time

SESSION_ENV = "REGOGATE_SESSION"
SWEEP_BUDGET = 1.5
"""How long the watchdog keeps sweeping after regogate died; forks racing the sweep are caught within it."""
SWEEP_INTERVAL = 0.02
"""Pause between sweeps, so processes being killed can leave /proc."""


def session_processes(token: str, *, exclude: frozenset[int] = frozenset()) -> list[int]:
    """Pids of live processes whose initial environment carries ``REGOGATE_SESSION=<token>``."""
    needle = f"{SESSION_ENV}={token}".encode()
    found: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in exclude:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0"):
            found.append(pid)
    return found


def kill_session(token: str, *, budget: float = SWEEP_BUDGET, exclude: frozenset[int] = frozenset()) -> int:
    """SIGKILL every process of the session until none is left or ``budget`` seconds pass; return how many."""
    killed: set[int] = set()
    deadline = time.monotonic() + budget
    while True:
        pids = session_processes(token, exclude=exclude | {os.getpid()})
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
            killed.add(pid)
        if not pids or time.monotonic() >= deadline:
            return len(killed)
        time.sleep(SWEEP_INTERVAL)


def _wait_for_end(read_fd: int) -> None:
    """Return once regogate, the only holder of the pipe's write end, is gone (end of file)."""
    while True:
        try:
            if not os.read(read_fd, 4096):
                return
        except InterruptedError:
            continue
        except OSError:
            return


def main(argv: list[str]) -> int:
    """``FD``: watch the pipe ``FD``, then kill the session and sweep its private directories."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    _wait_for_end(int(argv[1]))
    kill_session(os.environ[SESSION_ENV])
    import site  # started with -S: regogate is importable only once the site directories are set up

    site.main()
    from regogate.proxy.lifecycle._private_dir import sweep_stale_dirs

    sweep_stale_dirs()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
