"""The SDK client's ``server/discover`` probe (its ``auto`` mode) in front of an upstream of an older era.

A probe is a 2026-07-28 request, so it is served on a lent upstream. When the upstream turns it down
(an error, or no modern version among ``supportedVersions``: what makes the SDK client fall back to
``initialize`` and a session of its own), that upstream is of no further use and is stopped at once.
A definite refusal (method not found, or a result naming older versions only) is the same for every
caller of this gateway's one upstream command or URL, so it is replayed to later probes for
``REFUSAL_MEMORY`` seconds instead of starting an upstream for each.
"""

from __future__ import annotations

import anyio

from regogate.proxy.relay import BadLine, decode, encode, is_modern

__all__ = ["DISCOVER", "DiscoverRefusals"]

DISCOVER = "server/discover"
METHOD_NOT_FOUND = -32601
REFUSAL_MEMORY = 300.0
"""Seconds a definite refusal is replayed (a server upgraded behind the gateway is asked again after that)."""


class DiscoverRefusals:
    """The upstream's last definite refusal of ``server/discover``, and whether an answer is one."""

    def __init__(self) -> None:
        self._last: tuple[float, str, object] | None = None
        """(when, ``"error"`` or ``"result"``, its value)."""

    def refused(self, answer: bytes) -> bool:
        """Whether the upstream's answer to a probe turns the 2026-07-28 era down; a definite one is kept."""
        decoded = decode(answer)
        message = None if isinstance(decoded, BadLine) else decoded.message
        if not isinstance(message, dict):
            return True
        result, error = message.get("result"), message.get("error")
        versions = result.get("supportedVersions") if isinstance(result, dict) else None
        if isinstance(versions, list) and any(is_modern(version) for version in versions):
            return False
        if isinstance(result, dict) and isinstance(versions, list):
            self._last = (anyio.current_time(), "result", result)
        elif isinstance(error, dict) and error.get("code") == METHOD_NOT_FOUND:
            self._last = (anyio.current_time(), "error", error)
        return True

    def replay(self, request_id: object) -> bytes | None:
        """The kept refusal answering ``request_id``; ``None`` if none is kept or it is too old."""
        if self._last is None:
            return None
        when, kind, value = self._last
        if anyio.current_time() - when > REFUSAL_MEMORY:
            self._last = None
            return None
        return encode({"jsonrpc": "2.0", "id": request_id, kind: value})
