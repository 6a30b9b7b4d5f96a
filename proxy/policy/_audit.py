"""The audit log: one JSON line per event (start-up, decision, limit outcome, reload, shutdown)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from regogate.core import Clock, LogArgs, utc_second
from regogate.proxy.policy._arg_hash import ArgumentHasher, leaks
from regogate.proxy.policy._rotating import RotatingFile

log = logging.getLogger(__name__)
_EVENT = json.JSONEncoder(ensure_ascii=False, default=str)
"""One encoder for every event: ``json.dumps`` with options builds a new one per call."""


#: What a message that quotes the call's arguments becomes in the logs unless ``--log-args full``.
WITHHELD = "(withheld: it quotes the call's arguments; --log-args full logs it)"


def _timestamp(now: float) -> str:
    """``now`` as RFC 3339 UTC with microseconds; the text of the second is formatted once per second."""
    fraction, whole = math.modf(now)  # rounded as datetime.fromtimestamp rounds
    second, micro = int(whole), round(fraction * 1_000_000)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    elif micro < 0:
        second, micro = second - 1, micro + 1_000_000
    return f"{utc_second(second)}.{micro:06d}Z"


class AuditLog:
    """Appends events to a JSON-lines file rotated by size (or nowhere); arguments only as a keyed hash unless ``full``.

    Arguments reach the logs only through ``digest``, ``arguments`` and ``redact``.
    """

    def __init__(
        self,
        path: str | Path | None,
        clock: Clock,
        *,
        log_args: LogArgs = "hash",
        hasher: ArgumentHasher | None = None,
    ) -> None:
        """Open ``path`` (created 0600 in a 0700 directory when new); ``None`` writes nothing.

        Raises:
            OSError: the file cannot be created or opened.
        """
        self._clock = clock
        self.log_args: LogArgs = log_args
        self._hasher = hasher
        self.path = str(path) if path is not None else None
        self._file: RotatingFile | None = RotatingFile(path) if path is not None else None

    def digest(self, arguments: object) -> str | None:
        """The keyed hash of ``arguments``; ``None`` under ``--log-args none`` or without a key."""
        if self.log_args == "none" or self._hasher is None:
            return None
        return self._hasher.digest(arguments)

    def arguments(self, arguments: object, digest: str | None) -> dict[str, object]:
        """The argument fields of a decision event, as ``--log-args`` asks."""
        fields: dict[str, object] = {}
        if self.log_args == "full":
            fields["arguments"] = arguments
        if digest is not None:
            fields["args_hash"] = digest
        return fields

    def redact(self, text: str, arguments: object) -> str:
        """``text``, or ``WITHHELD`` when it quotes a name or value of ``arguments`` (unless ``full``)."""
        if self.log_args == "full" or not leaks(text, arguments):
            return text
        return WITHHELD

    def write(self, event: str, **fields: object) -> None:
        """Append one event; a failing disk is logged, never raised into the call path."""
        if self._file is None:
            return
        record = {"time": _timestamp(self._clock.now()), "event": event, **fields}
        try:
            self._file.write_line(_EVENT.encode(record))
        except OSError as exc:
            log.error("cannot write the audit log %s: %s", self.path, exc)

    def close(self) -> None:
        """Flush and close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
