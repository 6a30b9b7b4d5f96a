"""The watchdog's program once regogate has ended: kill its session, then sweep private directories.

While regogate lives the watchdog is a shell waiting for end of file on a pipe (``_watchdog``); it
then becomes ``python -I -S <this file>``, so no interpreter sits idle beside every regogate (10 MB
resident even bare). The killing needs only ``os``; the private-directory sweep needs regogate's
package, so the site directories (where regogate is installed) are set up after the kill.
``_watchdog`` imports the functions from here. Where there is no shell, it runs the whole time,
``--wait`` telling it to wait for end of file on its stdin first.
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


def _wait_for_end() -> None:
    """Return once regogate, the only holder of the pipe's write end (our stdin), is gone."""
    while True:
        try:
            if not os.read(0, 4096):
                return
        except InterruptedError:
            continue
        except OSError:
            return


def main(argv: list[str]) -> int:
    """Kill the session named by ``$REGOGATE_SESSION`` and sweep stale private directories.

    ``--wait``: first wait until regogate has ended (the shell did the waiting otherwise).
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)  # the shell already ignores them; Python alone must too
    if "--wait" in argv[1:]:
        _wait_for_end()
    kill_session(os.environ[SESSION_ENV])
    import site  # started with -S: regogate is importable only once the site directories are set up

    site.main()
    from regogate.proxy.lifecycle._private_dir import sweep_stale_dirs

    sweep_stale_dirs()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
