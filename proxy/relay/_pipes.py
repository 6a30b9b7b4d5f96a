"""The two line streams the relay talks to an upstream through; a spawned process and an HTTP server both fit."""

from __future__ import annotations

from typing import Protocol

from regogate.proxy.relay._framing import Oversize


class LineSource(Protocol):
    """Whole JSON-RPC lines from the upstream, without their newline."""

    async def receive(self) -> bytes | Oversize | None:
        """The next line, an ``Oversize`` marker, or ``None`` once the upstream is done."""
        ...


class LineSink(Protocol):
    """Whole JSON-RPC lines to the upstream."""

    async def send(self, line: bytes) -> None:
        """Deliver one line.

        Raises:
            PeerClosed: the upstream no longer takes messages.
        """
        ...

    async def aclose(self) -> None:
        """No more lines will be sent."""
        ...
