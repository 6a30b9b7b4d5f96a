"""The line streams the relay talks through; a spawned process, an HTTP server and HTTP clients all fit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from regogate.proxy.relay._codec import Decoded
from regogate.proxy.relay._framing import Oversize


class LineSource(Protocol):
    """Whole JSON-RPC lines from a peer, without their newline."""

    async def receive(self) -> bytes | Oversize | Decoded | None:
        """The next line, an ``Oversize`` marker, or ``None`` once the peer is done.

        A source that had to parse the line itself may hand over what ``decode`` returned for it
        instead of its bytes, so that the relay does not parse it a second time. That must be
        ``decode``'s own result, its message unchanged: the relay forwards its ``wire`` as the
        encoding of the message it decided on.
        """
        ...


class LineSink(Protocol):
    """Whole JSON-RPC lines to a peer."""

    async def send(self, line: bytes) -> None:
        """Deliver one line.

        Raises:
            PeerClosed: the peer no longer takes messages.
        """
        ...

    async def aclose(self) -> None:
        """No more lines will be sent."""
        ...


@runtime_checkable
class RoutedSink(LineSink, Protocol):
    """A client side that is told what each line is, so it can route lines without parsing them.

    The relay uses these two for what it relays or answers; lines it writes of its own accord
    (regogate's questions to the client) still come through ``send``.
    """

    async def send_answer(self, request_id: object, line: bytes) -> None:
        """``line`` answers the client's request ``request_id`` (the id it carries)."""
        ...

    async def send_message(self, message: dict[str, object], line: bytes) -> None:
        """``line`` is the encoding of ``message``, a request or a notification from the server."""
        ...


SendAnswer = Callable[[object, bytes], Awaitable[None]]
SendMessage = Callable[[dict[str, object], bytes], Awaitable[None]]


def routes(sink: LineSink) -> tuple[SendAnswer, SendMessage]:
    """How the relay sends answers and server messages to ``sink``: routed if it routes, else plain lines."""
    if isinstance(sink, RoutedSink):
        return sink.send_answer, sink.send_message
    return (lambda _request_id, line: sink.send(line)), (lambda _message, line: sink.send(line))
