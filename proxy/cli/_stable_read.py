"""Read a policy file only once it is complete: nobody has it open for writing, and it holds still.

An editor or a script that rewrites the file in place (truncate, then write) exposes prefixes of the
new policy, and a prefix may be a valid, wider policy (``version: "1"`` + ``default: allow``). So a
reload reads the file only when

- no process has it open for writing (Linux: a read lease can be taken only then), and
- two reads ``STABLE_WAIT`` apart give the same bytes and the same inode, size and mtime.

Editors that replace the file by a rename are covered too: the path then names a new, complete file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

__all__ = ["STABLE_TRIES", "STABLE_WAIT", "FileKey", "Snapshot", "file_key", "install_lease_signal", "read_when_stable"]

log = logging.getLogger(__name__)

#: How long the file must hold still; a writer's pause between two writes is usually far shorter.
STABLE_WAIT: Final = 0.15
#: How many times to look before giving up until the next poll (bounds one attempt to about 3 s).
STABLE_TRIES: Final = 20
#: A policy file is small; a bigger one is read only up to this and then fails validation.
MAX_POLICY_BYTES: Final = 16 * 1024 * 1024

FileKey = tuple[int, int, int]


@dataclass(frozen=True)
class Snapshot:
    """One read of the file: its bytes, identity, and whether a writer had it open."""

    data: bytes
    key: FileKey
    writer: bool


def file_key(path: Path) -> FileKey | None:
    """Inode, size and mtime (ns) of ``path``; ``None`` when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _being_written(fd: int) -> bool:
    """Whether some process has the file open for writing (a read lease is refused then)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        # EAGAIN: a writer has it open. Anything else (not our file, no lease support): cannot tell.
        return exc.errno == errno.EAGAIN
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return False


def _snapshot(path: Path) -> Snapshot | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # between an editor's delete and create: not there yet
    try:
        writer = hasattr(fcntl, "F_SETLEASE") and _being_written(fd)
        st = os.fstat(fd)
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_POLICY_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    return Snapshot(data, (st.st_ino, st.st_size, st.st_mtime_ns), writer)


def install_lease_signal() -> None:
    """Make a lease break harmless: the kernel signals SIGIO to a lease holder, which kills by default.

    A Python handler (not SIG_IGN) is used, so processes regogate starts get the default back at exec.
    """
    if hasattr(signal, "SIGIO") and signal.getsignal(signal.SIGIO) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGIO, lambda signum, frame: None)


async def read_when_stable(path: Path, *, wait: float = STABLE_WAIT, tries: int = STABLE_TRIES) -> Snapshot | None:
    """The file's content once nobody writes it and it held still for ``wait`` seconds; ``None`` if it never did."""
    for _ in range(tries):
        first = _snapshot(path)
        await anyio.sleep(wait)
        if first is None or first.writer:
            continue
        second = _snapshot(path)
        if second is not None and not second.writer and (second.data, second.key) == (first.data, first.key):
            return second
    log.info("%s is still being written; it is read again at the next poll", path)
    return None
