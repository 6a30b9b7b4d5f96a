"""An append-only JSON-lines file that rotates by size: ``audit.jsonl`` -> ``audit.jsonl.1`` -> ... -> dropped.

Rotation happens between whole lines, so no event is ever split across files. Several regogate
processes for the same server id may share the file: each appends whole lines (``O_APPEND``), and a
process notices that another rotated it (the inode changed) and reopens.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_KEEP", "DEFAULT_MAX_BYTES", "RotatingFile"]

#: An audit event is a few hundred bytes: 10 MiB holds tens of thousands of decisions.
DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
#: Rotated files kept beside the current one.
DEFAULT_KEEP: Final = 5


class RotatingFile:
    """Appends lines to ``path``; past ``max_bytes`` the file moves to ``path.1`` and a new one starts."""

    def __init__(self, path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP) -> None:
        """Open (create, mode 0600) ``path`` for appending; its directory is created private (0700).

        Raises:
            OSError: the directory or file cannot be created or opened.
        """
        self.path = Path(path)
        self._max_bytes = max_bytes
        self._keep = keep
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        self._fd, self._inode = self._open()

    def _open(self) -> tuple[int, tuple[int, int]]:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        opened = os.fstat(fd)
        return fd, (opened.st_dev, opened.st_ino)

    def write_line(self, line: str | bytes) -> None:
        """Append ``line`` and a newline, rotating first when the file is full.

        Raises:
            OSError: the disk refused the write.
        """
        # A lone surrogate (JSON text may carry one escaped) is written as its escape, never refused.
        data = (line.encode("utf-8", "backslashreplace") if isinstance(line, str) else line) + b"\n"
        # One stat of the path tells both whether another process rotated the file (a new inode
        # there) and, when not, the size of the file this process appends to.
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        if current is None or (current.st_dev, current.st_ino) != self._inode:
            os.close(self._fd)
            self._fd, self._inode = self._open()
        elif current.st_size > 0 and current.st_size + len(data) > self._max_bytes:
            self._rotate()
        view = memoryview(data)
        while view:  # O_APPEND: each write lands at the end, whole unless the disk is full
            view = view[os.write(self._fd, view) :]

    def _rotate(self) -> None:
        os.close(self._fd)
        with suppress(FileNotFoundError):
            os.unlink(f"{self.path}.{self._keep}")
        for index in range(self._keep - 1, 0, -1):
            with suppress(FileNotFoundError):
                os.replace(f"{self.path}.{index}", f"{self.path}.{index + 1}")
        if self._keep > 0:
            with suppress(FileNotFoundError):
                os.replace(self.path, f"{self.path}.1")
        else:
            with suppress(FileNotFoundError):
                os.unlink(self.path)
        self._fd, self._inode = self._open()

    def close(self) -> None:
        """Close the file (every line is already written)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
