"""One HTTP client session seen from the relay: a line source and sink whose other end is HTTP exchanges.

Messages a client POSTs reach the relay as the endpoint parsed them (``submit``), so the relay reads
each once: offered first to the relay's carrier, which takes a ``tools/call`` into the POST's own task
(a ``CarriedSource``), else queued for the relay, one at a time, in the order they came. What the
relay writes to the client is routed by what the relay says it is (``send_answer``,
``send_message``), never parsed again: an answer goes to the exchange (the POST) that waits for its
id; a server message goes to the exchange it belongs to (``notifications/progress`` by its token;
anything else to the only request in flight that takes an event stream), else to the session's GET
stream, else it waits in a small backlog for one. An exchange whose client stopped reading is
dropped, never waited on forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import deque
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from regogate.proxy.relay import UPSTREAM_GONE, Carry, Decoded, Key, error_line, expire_waiter, id_key

__all__ = ["ClientLink", "Exchange", "Outgoing"]

logger = logging.getLogger(__name__)

EXCHANGE_BUFFER = 32
"""Messages queued for one exchange's HTTP answer before the relay waits on that client."""
ROUTE_TIMEOUT = 10.0
"""How long the relay waits on a client that stopped reading before its exchange is dropped."""
BACKLOG = 64
"""Server messages kept for a GET stream not opened yet; the oldest go first."""
REQUEST_CANCELLED = -32800
"""The code the MCP SDK's server ends a cancelled request's HTTP answer with."""
SUBMIT_TIMEOUT = 30.0
"""How long a POSTed line may wait for the relay to take it (the relay is deciding 64 calls already)."""

Outgoing = tuple[bytes, bool]
"""A line for the client and whether it is the answer that ends its exchange."""


@dataclass(eq=False)
class Exchange:
    """One client request waiting for its answer, and the server messages that travel with it.

    Its messages wait in a queue of at most ``EXCHANGE_BUFFER``, with a memory stream's errors: the
    relay's side ``send``s and ``end``s it; the HTTP side ``receive``s and ``close``s it. (One memory
    object stream per request cost more than the rest of the exchange: a pair of streams and their
    state per request, and a turn of the event loop before every wait; the wait for the next message
    is a future of the loop's with a timer of the loop's, cheaper than an event and a cancel scope.)
    """

    request_id: str | int
    key: Key
    token: Key | None
    """The request's ``_meta.progressToken``: progress notifications for it come here."""
    sse: bool
    """The client accepts an event stream, so server messages may travel in this exchange."""
    answered: bool = False
    _queue: deque[Outgoing] = field(default_factory=deque, init=False, repr=False)
    _ended: bool = field(default=False, init=False)
    """Nothing more will be sent."""
    _closed: bool = field(default=False, init=False)
    """The HTTP side stopped reading."""
    _arrived: asyncio.Future[bool] | None = field(default=None, init=False, repr=False)
    _room: anyio.Event | None = field(default=None, init=False, repr=False)

    def send_nowait(self, item: Outgoing) -> None:
        """Queue ``item``.

        Raises:
            anyio.ClosedResourceError: the exchange was ended.
            anyio.BrokenResourceError: the HTTP side closed it.
            anyio.WouldBlock: the queue is full.
        """
        if self._ended:
            raise anyio.ClosedResourceError
        if self._closed:
            raise anyio.BrokenResourceError
        if len(self._queue) >= EXCHANGE_BUFFER:
            raise anyio.WouldBlock
        self._queue.append(item)
        self._wake()

    async def send(self, item: Outgoing) -> None:
        """Queue ``item``, waiting (unbounded: the caller bounds it) while the queue is full."""
        while True:
            try:
                self.send_nowait(item)
                return
            except anyio.WouldBlock:
                self._room = anyio.Event()
                await self._room.wait()

    def end(self) -> None:
        """Nothing more will be sent: the HTTP side gets ``EndOfStream`` once it has read the queue."""
        self._ended = True
        self._wake()

    def receive_nowait(self) -> Outgoing:
        """The next item.

        Raises:
            anyio.ClosedResourceError: the HTTP side closed it.
            anyio.EndOfStream: it was ended and everything sent was read.
            anyio.WouldBlock: nothing yet.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        if self._queue:
            item = self._queue.popleft()
            if self._room is not None:
                self._room.set()
            return item
        if self._ended:
            raise anyio.EndOfStream
        raise anyio.WouldBlock

    async def receive(self, timeout: float | None = None) -> Outgoing | None:
        """The next item, waiting at most ``timeout`` seconds for it (``None``: the caller bounds the wait).

        ``None`` when the time passed first; raises as ``receive_nowait``.
        """
        loop: asyncio.AbstractEventLoop | None = None  # looked up only to wait: often the answer is there
        deadline: float | None = None
        while True:
            try:
                return self.receive_nowait()
            except anyio.WouldBlock:
                pass
            if loop is None:
                loop = asyncio.get_running_loop()
                deadline = None if timeout is None or math.isinf(timeout) else loop.time() + timeout
            waiter: asyncio.Future[bool] = loop.create_future()
            self._arrived = waiter
            timer = None if deadline is None else loop.call_at(deadline, expire_waiter, waiter)
            try:
                if not await waiter:
                    return None
            finally:
                self._arrived = None
                if timer is not None:
                    timer.cancel()

    def _wake(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(True)

    def close(self) -> None:
        """The HTTP side reads no more: what is queued is dropped, a waiting sender gets ``BrokenResourceError``."""
        self._closed = True
        self._queue.clear()
        if self._room is not None:
            self._room.set()


class ClientLink:
    """The relay's client side (``receive``/``send``) for one HTTP session, and the HTTP side's handle on it."""

    def __init__(self) -> None:
        self._inbound_send, self._inbound = anyio.create_memory_object_stream[Decoded](0)
        self._exchanges: dict[Key, Exchange] = {}
        self._by_token: dict[Key, Exchange] = {}
        self._listener: MemoryObjectSendStream[bytes] | None = None
        self._backlog: deque[bytes] = deque(maxlen=BACKLOG)
        self._ended = False
        self._carry: Carry | None = None
        self._queued = 0
        """Messages queued for the relay that it has not finished with: none may be overtaken."""
        self._in_hand = False
        """The relay took a queued message and has not asked for the next one yet."""

    # --- the relay's side ---------------------------------------------------------

    def attach_carrier(self, carry: Carry) -> None:
        """Offer each later message to ``carry`` in the POST's own task before queueing it."""
        self._carry = carry

    async def receive(self) -> Decoded | None:
        """The next message the client POSTed, as ``decode`` read it; ``None`` once the session is closing."""
        if self._in_hand:  # the relay asks again only once it is done with the last one
            self._in_hand = False
            self._queued -= 1
        try:
            message = await self._inbound.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None
        self._in_hand = True
        return message

    async def send(self, line: bytes) -> None:
        """Route a line the relay wrote of its own accord (its questions to the client) by what it holds."""
        message = json.loads(line)  # the relay's own canonical encoding
        if not isinstance(message, dict):
            return
        if "method" in message:
            await self._route_server_message(message, line)
        else:
            await self.send_answer(message.get("id"), line)

    async def send_answer(self, request_id: object, line: bytes) -> None:
        """``line`` answers ``request_id``: it ends that request's exchange (dropped if none waits for it)."""
        key = id_key(request_id)
        exchange = self._exchanges.pop(key, None) if key is not None else None
        if exchange is None:
            logger.debug("dropped an answer for a request no client waits for")
            return
        self._forget_token(exchange)
        exchange.answered = True
        await self._put(exchange, line, final=True)

    async def send_message(self, message: dict[str, object], line: bytes) -> None:
        """``line`` is the server's ``message``: to its request's exchange, the GET stream or the backlog."""
        await self._route_server_message(message, line)

    async def aclose(self) -> None:
        """Nothing to flush: every exchange ends on its own."""

    # --- the HTTP side ------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Requests are waiting for their answers."""
        return bool(self._exchanges)

    @property
    def ended(self) -> bool:
        return self._ended

    def open_exchange(self, request_id: str | int, token: object, *, sse: bool) -> Exchange | None:
        """Expect the answer to ``request_id``; ``None`` if a request with that id is still waiting."""
        key = id_key(request_id)
        if key is None or key in self._exchanges or self._ended:
            return None
        token_key = id_key(token) if token is not None else None
        exchange = Exchange(request_id, key, token_key, sse)
        self._exchanges[key] = exchange
        if token_key is not None:
            self._by_token[token_key] = exchange
        return exchange

    def cancel_exchange(self, request_id: object) -> None:
        """The client cancelled ``request_id``: its exchange ends now with an error, as no answer may follow."""
        key = id_key(request_id)
        exchange = self._exchanges.pop(key, None) if key is not None else None
        if exchange is None:
            return
        self._forget_token(exchange)
        with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            exchange.send_nowait((error_line(request_id, REQUEST_CANCELLED, "request cancelled"), True))
        exchange.end()

    def close_exchange(self, exchange: Exchange) -> None:
        """The HTTP answer is over (sent, or the client went away): later messages for it are dropped."""
        if self._exchanges.get(exchange.key) is exchange:
            del self._exchanges[exchange.key]
        self._forget_token(exchange)
        exchange.close()

    async def submit(self, message: Decoded) -> bool:
        """Hand one client message to the relay; False when the session is over or the relay stays busy.

        ``message`` is ``decode``'s result, unchanged: the relay forwards its ``wire``.
        """
        if self._ended:
            return False
        if self._carry is not None and not self._queued and await self._carry(message):
            return True
        self._queued += 1
        try:
            self._inbound_send.send_nowait(message)  # the relay is waiting for it: the usual case, no timer
            return True
        except anyio.WouldBlock:
            pass
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._queued -= 1
            return False
        with anyio.move_on_after(SUBMIT_TIMEOUT):
            try:
                await self._inbound_send.send(message)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._queued -= 1
                return False
            return True
        self._queued -= 1
        return False

    def listen(self) -> MemoryObjectReceiveStream[bytes] | None:
        """The session's stream of server messages (the GET stream); ``None`` if one is open already."""
        if self._listener is not None or self._ended:
            return None
        send, receive = anyio.create_memory_object_stream[bytes](EXCHANGE_BUFFER)
        while self._backlog:
            try:
                send.send_nowait(self._backlog.popleft())
            except anyio.WouldBlock:
                break
        self._listener = send
        return receive

    def unlisten(self, stream: MemoryObjectReceiveStream[bytes]) -> None:
        """The GET stream's client went away."""
        stream.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def end_input(self) -> None:
        """No more client lines: the relay sees the end of its input and winds the session down."""
        self._inbound_send.close()

    def finish(self, reason: str = "upstream server is gone") -> None:
        """The relay is done: every request still waiting gets an error answer, the GET stream ends."""
        self._ended = True
        self._inbound_send.close()
        self._inbound.close()
        for exchange in list(self._exchanges.values()):
            with_error = error_line(exchange.request_id, UPSTREAM_GONE, reason)
            with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                exchange.send_nowait((with_error, True))
            exchange.end()
        self._exchanges.clear()
        self._by_token.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    # --- routing ------------------------------------------------------------------

    async def _route_server_message(self, message: dict[str, object], line: bytes) -> None:
        if message.get("method") == "notifications/progress":
            params = message.get("params")
            token = id_key(params.get("progressToken")) if isinstance(params, dict) else None
            exchange = self._by_token.get(token) if token is not None else None
            if exchange is not None and exchange.sse:
                await self._put(exchange, line, final=False)
                return
        streaming = [e for e in self._exchanges.values() if e.sse]
        if len(streaming) == 1:
            await self._put(streaming[0], line, final=False)
        elif self._listener is not None:
            await self._to_listener(line)
        elif streaming:
            await self._put(streaming[-1], line, final=False)
        else:
            self._backlog.append(line)

    async def _put(self, exchange: Exchange, line: bytes, *, final: bool) -> None:
        try:
            try:
                exchange.send_nowait((line, final))
            except anyio.WouldBlock:
                with anyio.fail_after(ROUTE_TIMEOUT):
                    await exchange.send((line, final))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("the client of request %r went away; message dropped", exchange.request_id)
        except TimeoutError:
            logger.warning("the client of request %r stopped reading; its answer is dropped", exchange.request_id)
            self.close_exchange(exchange)
        if final:
            exchange.end()

    async def _to_listener(self, line: bytes) -> None:
        listener = self._listener
        assert listener is not None
        try:
            try:
                listener.send_nowait(line)
            except anyio.WouldBlock:
                with anyio.fail_after(ROUTE_TIMEOUT):
                    await listener.send(line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, TimeoutError):
            logger.info("the GET stream's client went away or stopped reading; message kept for the next one")
            listener.close()
            if self._listener is listener:
                self._listener = None
            self._backlog.append(line)

    def _forget_token(self, exchange: Exchange) -> None:
        if exchange.token is not None and self._by_token.get(exchange.token) is exchange:
            del self._by_token[exchange.token]
