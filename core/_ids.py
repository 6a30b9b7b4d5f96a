"""Random identifiers for decisions and regogate's own requests."""

from __future__ import annotations

import os


def random_id() -> str:
    """A random UUID (version 4) as 32 hex digits, like ``uuid.uuid4().hex``.

    Made here rather than by ``uuid``, which costs five times as much per id and, on import, loads
    ``platform`` as well: both sit on the start-up path and on every decision.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()
