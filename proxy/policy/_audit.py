"""The audit log: one JSON line per event (start-up, decision, limit outcome, reload, shutdown)."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from regogate.core import Clock, LogArgs
from regogate.proxy.policy._rotating import RotatingFile

log = logging.getLogger(__name__)


def argument_hash(arguments: object) -> str:
    """A SHA-256 of the arguments' canonical JSON: joins events without revealing values."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class AuditLog:
    """Appends events to a JSON-lines file rotated by size (or nowhere); arguments only as a hash unless ``full``."""

    def __init__(self, path: str | Path | None, clock: Clock, *, log_args: LogArgs = "hash") -> None:
        """Open ``path`` (created 0600 in a 0700 directory when new); ``None`` writes nothing.

        Raises:
            OSError: the file cannot be created or opened.
        """
        self._clock = clock
        self.log_args: LogArgs = log_args
        self.path = str(path) if path is not None else None
        self._file: RotatingFile | None = RotatingFile(path) if path is not None else None

    def arguments(self, arguments: object) -> dict[str, object]:
        """The argument fields of a decision event, as ``--log-args`` asks."""
        if self.log_args == "none":
            return {}
        if self.log_args == "full":
            return {"arguments": arguments, "args_hash": argument_hash(arguments)}
        return {"args_hash": argument_hash(arguments)}

    def write(self, event: str, **fields: object) -> None:
        """Append one event; a failing disk is logged, never raised into the call path."""
        if self._file is None:
            return
        stamp = datetime.fromtimestamp(self._clock.now(), UTC).isoformat(timespec="microseconds")
        record = {"time": stamp.replace("+00:00", "Z"), "event": event, **fields}
        try:
            self._file.write_line(json.dumps(record, ensure_ascii=False, default=str))
        except OSError as exc:
            log.error("cannot write the audit log %s: %s", self.path, exc)

    def close(self) -> None:
        """Flush and close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
