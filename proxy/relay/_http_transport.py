"""HTTP/1.1 for the Streamable HTTP upstream: an httpx transport that sends each request in one write.

httpx's default transport (httpcore) cost ~3 ms of CPU per request on this machine, seven times
httpx's own share (bench/notes.md, "Bridge latency"): it asks which async library runs on every
lock it sets up (a failing ``import sniffio`` when sniffio is absent, four per request) and writes
a request's headers and body in two sends, waking the server twice. This transport writes the
whole request at once (framed and checked by ``h11``), reads the answer with ``httptools``
(llhttp, the parser uvicorn uses; a small fraction of ``h11``'s cost per answer), streams it,
and keeps idle connections for reuse.

A request is never sent twice: an idle connection is checked before reuse (open, nothing unread),
and a connection that breaks after the request left fails that request.
"""

from __future__ import annotations

import select
import ssl
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import h11
import httptools
import httpx

from regogate.proxy.relay._http_answer import AnswerEvent, HttpAnswer

READ_CHUNK = 64 * 1024
"""One socket read."""
KEEPALIVE_EXPIRY = 30.0
"""An idle connection older than this is closed rather than reused (servers drop idle ones too)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Connection:
    """One HTTP/1.1 connection: the socket stream and the answer being read on it."""

    __slots__ = ("answer", "idle_since", "key", "stream")

    def __init__(self, key: tuple[str, str, int], stream: anyio.abc.ByteStream) -> None:
        self.key = key
        self.stream = stream
        self.answer = HttpAnswer()
        self.idle_since = 0.0

    def quiet(self) -> bool:
        """Still open with nothing unread: safe to send on (bytes nobody asked for, or the peer's close, are not)."""
        raw = self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if raw is None:
            return False
        poller = select.poll()
        poller.register(raw.fileno(), select.POLLIN | select.POLLPRI | select.POLLRDHUP)
        return not poller.poll(0)

    def ended_already(self) -> bool:
        """The answer's end has been read (its unread rest, if any, was already here): nothing is left."""
        answer = self.answer
        while answer.events and answer.events[0] is not None:
            answer.events.popleft()
        return answer.ended

    def reusable(self) -> bool:
        """The exchange is complete and nothing came after it: ready for the next request."""
        return self.answer.reusable()

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)


class H11Transport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 connections, at most ``max_connections`` busy at once, ``max_keepalive`` kept idle."""

    def __init__(self, *, max_connections: int, max_keepalive: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = anyio.Semaphore(max_connections, fast_acquire=True)
        self._max_keepalive = max_keepalive
        self._ssl = ssl_context
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` in one write and return its answer as it streams in.

        Raises:
            httpx.TransportError: a connect, write or read fault or timeout; never after a resend.
        """
        if self._closed:
            raise httpx.ConnectError("the HTTP client is closed", request=request)
        timeouts = request.extensions.get("timeout", {})
        with anyio.move_on_after(_bound(timeouts.get("pool"))) as waited:
            await self._slots.acquire()
        if waited.cancelled_caught:
            raise httpx.PoolTimeout("no free connection in time", request=request)
        try:
            connection = await self._connection(request, timeouts)
        except BaseException:
            self._slots.release()
            raise
        self._busy.add(connection)
        try:
            status, headers = await self._exchange(connection, request, timeouts)
        except BaseException:
            await self._finish(connection, done=False)
            raise
        return httpx.Response(
            status,
            headers=headers,
            stream=_Body(self, connection, request, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _connection(self, request: httpx.Request, timeouts: dict[str, float | None]) -> _Connection:
        url = request.url
        key = (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 80))
        expired = anyio.current_time() - KEEPALIVE_EXPIRY
        for connection in reversed(self._idle):
            if connection.key == key:
                self._idle.remove(connection)
                if connection.idle_since > expired and connection.quiet():
                    return connection
                await connection.aclose()
        try:
            with anyio.fail_after(_bound(timeouts.get("connect"))):
                stream: anyio.abc.ByteStream
                if url.scheme == "https":
                    if self._ssl is None:
                        self._ssl = ssl.create_default_context()
                    stream = await anyio.connect_tcp(
                        key[1], key[2], ssl_context=self._ssl, tls_standard_compatible=False
                    )
                else:
                    stream = await anyio.connect_tcp(key[1], key[2])
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("connecting timed out", request=request) from exc
        except (OSError, anyio.BrokenResourceError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return _Connection(key, stream)

    async def _exchange(
        self, connection: _Connection, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        conn = h11.Connection(h11.CLIENT)  # frames and checks the request (no CR or LF in a header, say)
        connection.answer = HttpAnswer()
        target = request.url.raw_path
        try:
            data = conn.send(h11.Request(method=request.method, target=target, headers=request.headers.raw))
            body = await request.aread()
            if body:
                data += conn.send(h11.Data(data=body))
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        try:
            with anyio.fail_after(_bound(timeouts.get("write"))):
                await connection.stream.send(data or b"")
        except TimeoutError as exc:
            raise httpx.WriteTimeout("sending timed out", request=request) from exc
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc
        event = await _next_event(connection, request, timeouts.get("read"))
        if not isinstance(event, tuple):  # only a bug in the reader could get here: the head comes first
            raise httpx.RemoteProtocolError("the server sent no HTTP answer", request=request)
        return event

    async def _finish(self, connection: _Connection, *, done: bool) -> None:
        """Put ``connection`` back for reuse if its exchange completed cleanly, else close it."""
        self._busy.discard(connection)
        try:
            if done and not self._closed and len(self._idle) < self._max_keepalive and connection.reusable():
                connection.idle_since = anyio.current_time()
                self._idle.append(connection)
            else:
                await connection.aclose()
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        """Close every connection; requests in flight fail with a read error."""
        self._closed = True
        connections = [*self._idle, *self._busy]
        self._idle.clear()
        for connection in connections:
            await connection.aclose()


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives; closing it hands the connection back (or closes it)."""

    def __init__(
        self, transport: H11Transport, connection: _Connection, request: httpx.Request, read: float | None
    ) -> None:
        self._transport = transport
        self._connection = connection
        self._request = request
        self._read = read
        self._done = False
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self._done:
            event = await _next_event(self._connection, self._request, self._read)
            if isinstance(event, bytes):
                yield event
            elif event is None:
                self._done = True
            else:
                raise httpx.RemoteProtocolError("unexpected HTTP event in an answer", request=self._request)

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            await self._transport._finish(self._connection, done=self._done or self._connection.ended_already())


async def _next_event(connection: _Connection, request: httpx.Request, read: float | None) -> AnswerEvent:
    """The next event of the answer (head, body chunk, ``None`` at its end), reading the socket as needed.

    Raises:
        httpx.ReadTimeout: nothing arrived within ``read`` seconds.
        httpx.ReadError: the connection broke.
        httpx.RemoteProtocolError: the bytes are not HTTP/1.1, or the answer was cut short.
    """
    answer = connection.answer
    while not answer.events:
        try:
            with anyio.fail_after(_bound(read)):
                chunk = await connection.stream.receive(READ_CHUNK)
        except TimeoutError as exc:
            raise httpx.ReadTimeout("reading timed out", request=request) from exc
        except anyio.EndOfStream:
            chunk = b""
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        try:
            answer.feed(chunk)
        except httptools.HttpParserError as exc:
            raise httpx.RemoteProtocolError(f"not an HTTP/1.1 answer: {exc}", request=request) from exc
        except EOFError:
            raise httpx.RemoteProtocolError("the server closed the connection mid-answer", request=request) from None
    return answer.events.popleft()


def _bound(seconds: float | None) -> float:
    return float("inf") if seconds is None else seconds
