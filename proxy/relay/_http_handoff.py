"""How a Streamable HTTP session's server messages reach the relay, and which one answers which request.

Attached to a relay (``ParsedSink.attach``), every message goes straight to the relay's handler,
which parses it once and says what it was: no queue, no second parse. Used on its own (``regogate
scan``, tests), messages are parsed here, made one line, and queued for ``receive``. A message that
arrives while the stream it came on may be cancelled (a client's cancel, the server ending the
session) is handed on shielded from that, so the client never gets half a line; only ``stop`` (the
session's own end) cuts a hand-on short, so shutdown stays bounded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TypeGuard

import anyio

from regogate.proxy.relay._framing import Oversize
from regogate.proxy.relay._http_bodies import one_line
from regogate.proxy.relay._http_session import HttpFailure, HttpSession
from regogate.proxy.relay._pipes import Deliver
from regogate.proxy.relay._wire import UPSTREAM_MALFORMED, id_key

logger = logging.getLogger(__name__)

INBOX_SIZE = 16
"""Messages decoded but not yet taken by ``receive`` (used on its own only)."""


@dataclass
class Post:
    """One request POST in flight."""

    request_id: str | int
    method: str
    modern: bool
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    answered: bool = False
    silent: bool = False  # cancelled by the client, or the session is closing: no answer is owed


class Handoff:
    """Server messages to the relay: ``message`` for a whole message, ``push`` for a line made here."""

    def __init__(self, http: HttpSession) -> None:
        self._http = http
        self._relay: Deliver | None = None
        self._inbox_in, self._inbox = anyio.create_memory_object_stream[bytes | Oversize](INBOX_SIZE)
        self._handing: set[anyio.CancelScope] = set()
        self._stopped = False

    def attach(self, deliver: Deliver) -> None:
        """Hand every server message to ``deliver`` instead of queueing it for ``receive``."""
        self._relay = deliver

    async def receive(self) -> bytes | Oversize | None:
        """The next queued message as one line; ``None`` once closed (attached: nothing queues, it waits for that)."""
        try:
            try:
                return self._inbox.receive_nowait()  # no pass of the event loop when a message is waiting
            except anyio.WouldBlock:
                return await self._inbox.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None

    def close(self) -> None:
        """No more messages: ``receive`` ends once the queue is empty."""
        self._inbox_in.close()

    def stop(self) -> None:
        """The session is ending: cut short any shielded hand-on, and shield none from now on."""
        self._stopped = True
        for scope in self._handing:
            scope.cancel()

    def close_reading(self) -> None:
        self._inbox.close()

    async def message(self, post: Post | None, data: bytes, *, inside: bool) -> None:
        """Hand one server message on; note whether it answers ``post``.

        ``inside``: called within a scope that a cancel or the session's end may cancel meanwhile.

        Raises:
            HttpFailure: it was meant as ``post``'s answer and cannot be read.
        """
        if self._relay is not None and (post is None or not (post.method == "initialize" or post.modern)):
            # The relay parses it (once) and tells what it was; the session learns nothing from it.
            message = await (self._hand_on(data) if inside else self._relay(data))
            if message is None and post is not None:
                raise HttpFailure(UPSTREAM_MALFORMED, "upstream reply is not a readable JSON-RPC message")
            if post is not None and _answers(message, post):
                post.answered = True
            return
        line, message = one_line(data)
        if message is None:
            if post is not None:
                raise HttpFailure(UPSTREAM_MALFORMED, "upstream reply is not JSON")
            logger.warning("dropped a server message that is not JSON")
            return
        if post is not None and _answers(message, post):
            post.answered = True  # before the relay sees it: the session learns from it first
            if post.method == "initialize":
                self._http.note_version(message)
            elif post.method == "tools/list" and post.modern:
                self._http.tools.learn(message.get("result"))
        await self.push(line)

    async def push(self, line: bytes | Oversize) -> None:
        """Hand on a line made here (an error answer, an oversize marker)."""
        if self._relay is not None:
            await self._hand_on(line)
            return
        try:
            try:
                self._inbox_in.send_nowait(line)  # no pass of the event loop when the relay has room
            except anyio.WouldBlock:
                await self._inbox_in.send(line)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            logger.debug("relay gone; server message dropped")

    async def _hand_on(self, data: bytes | Oversize) -> object:
        assert self._relay is not None
        if self._stopped:
            return await self._relay(data)
        with anyio.CancelScope(shield=True) as scope:
            self._handing.add(scope)
            try:
                return await self._relay(data)
            finally:
                self._handing.discard(scope)
        return None


def _answers(message: object, post: Post) -> TypeGuard[dict[str, object]]:
    """``message`` is the answer to ``post``'s request."""
    return (
        isinstance(message, dict) and "method" not in message and id_key(message.get("id")) == id_key(post.request_id)
    )
