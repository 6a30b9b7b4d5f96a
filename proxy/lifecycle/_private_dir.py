"""Private temporary directories that say who owns them, so a dead owner's are swept away.

Each directory is ``<tmp>/regogate-<kind>-XXXX`` (mode 0700) and holds an owner file naming the
creating process by pid *and* start time, so a reused pid never makes a stale directory look alive.
``sweep_stale_dirs`` removes every such directory of ours whose owner is gone: regogate runs it at
start-up, and its watchdog runs it when regogate dies.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Final

__all__ = ["OWNER_FILE", "PREFIX", "private_dir", "process_start_time", "sweep_stale_dirs"]

log = logging.getLogger(__name__)

PREFIX: Final = "regogate-"
OWNER_FILE: Final = ".regogate-owner"
#: A bound on the sweep: a temp directory holds far fewer of our directories than this.
MAX_SWEEP_ENTRIES: Final = 10_000


def process_start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), if it runs."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] == b"Z":
        return None
    return fields[19].decode()


def private_dir(kind: str) -> Path:
    """Create ``<tmp>/regogate-<kind>-XXXX``, mode 0700, owned by this process (see ``sweep_stale_dirs``)."""
    directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-"))
    os.chmod(directory, 0o700)
    pid = os.getpid()
    owner = f"{pid} {process_start_time(pid) or '?'}\n"
    (directory / OWNER_FILE).write_text(owner, encoding="utf-8")
    return directory


def _owner_alive(directory: Path) -> bool:
    try:
        text = (directory / OWNER_FILE).read_text(encoding="utf-8")
        pid_text, started = text.split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return True  # not ours, or still being created: leave it
    if started == "?":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return process_start_time(pid) == started


def sweep_stale_dirs(root: str | None = None) -> list[Path]:
    """Remove our private directories whose owner process is gone; return what was removed.

    Only real directories (not symlinks) owned by this user, mode 0700, with an owner file are
    considered; anything else under the temp directory is left alone. Never raises.
    """
    base = Path(root or tempfile.gettempdir())
    removed: list[Path] = []
    uid = os.getuid()
    try:
        entries = os.scandir(base)
    except OSError:
        return removed
    with entries:
        for count, entry in enumerate(entries):
            if count >= MAX_SWEEP_ENTRIES:
                break
            if not entry.name.startswith(PREFIX):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or stat.S_IMODE(info.st_mode) != 0o700:
                continue
            path = Path(entry.path)
            if _owner_alive(path):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed %d stale private directories of dead regogate processes", len(removed))
    return removed
