"""The line streams the relay talks through; a spawned process, an HTTP server and HTTP clients all fit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from regogate.proxy.relay._codec import Decoded
from regogate.proxy.relay._framing import Oversize

Deliver = Callable[[bytes | Oversize], Awaitable[object]]
"""The relay's handling of one upstream message; it returns the parsed message (``None`` if it was unreadable)."""

Carry = Callable[[Decoded], Awaitable[bool]]
"""The relay's handling of one client message in the sender's own task; False: not taken, queue it instead."""


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


@runtime_checkable
class CarriedSource(LineSource, Protocol):
    """A client side whose every message arrives in a task of its own that then waits for the answer.

    The HTTP gateway is one: each POST has its task. The relay ``attach``es ``carry`` and the source
    offers each message to it first, in the sender's task; what ``carry`` turns down (False) the source
    queues for ``receive`` as usual, and it must not offer a message while one it queued is still being
    dealt with (a carried message must never overtake one the client sent before it).
    """

    def attach_carrier(self, carry: Carry) -> None:
        """Offer every later message to ``carry`` before queueing it."""
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


@runtime_checkable
class ImmediateSink(LineSink, Protocol):
    """A sink that can tell, without waiting, whether it takes a line whole right now (a pipe)."""

    def try_send(self, line: bytes) -> bool:
        """Write ``line`` now if no wait is needed; False when nothing was written.

        Raises:
            PeerClosed: the peer no longer takes messages.
        """
        ...


@runtime_checkable
class ParsedSink(LineSink, Protocol):
    """An upstream that takes messages the relay already parsed and hands its own straight back (the HTTP bridge).

    The relay ``attach``es its handler before it sends anything; from then on every server message
    goes to that handler, in the upstream's own task, and the upstream's ``receive`` only waits for
    its end. Nothing is parsed twice and no message waits in a queue between the two.
    """

    def attach(self, deliver: Deliver) -> None:
        """Hand every later server message to ``deliver``."""
        ...

    async def send_parsed(self, line: bytes, message: dict[str, object], *, carry: bool) -> None:
        """Send ``line``, whose parsed form is ``message``.

        ``carry``: the caller's task may be held until the request's answer has been delivered
        (a ``tools/call`` already runs in its own task); otherwise return as soon as it is on its way.

        Raises:
            PeerClosed: the upstream no longer takes messages.
        """
        ...
