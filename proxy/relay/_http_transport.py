"""HTTP/1.1 to one Streamable HTTP server: keep-alive connections, each request written whole in one send.

A request is written by ``request_head`` in one fixed form (request line, ``Host``, the given
headers, ``Content-Length``), checked as it is built: a header name that is not a token, or a value
or target holding a control character (CR, LF, NUL...) or a non-ASCII one, refuses the request
before a byte leaves. Answers are read by ``HttpAnswer`` (llhttp through ``httptools``) and handed
out as a ``Reply`` that streams its body. Neither httpx's client nor its request/response objects
are on this path: on this machine they cost about as much CPU as the rest of a bridged call's HTTP
(bench/notes.md, "Bridge latency, second round"). Faults are httpx's exception classes, which the
session layer turns into JSON-RPC errors.

A request is never sent twice: an idle connection is checked before reuse (open, nothing unread),
and a connection that breaks after the request left fails that request.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import AsyncIterator, Iterable

import anyio
import anyio.abc
import httptools
import httpx

from regogate.proxy.relay._http_answer import AnswerEvent, HttpAnswer
from regogate.proxy.relay._http_wire import Wire, connect_wire

KEEPALIVE_EXPIRY = 30.0
"""An idle connection older than this is closed rather than reused (servers drop idle ones too)."""
CLOSE_TIMEOUT = 1.0
"""Bound on closing a connection whose answer was not read to its end."""
MAX_HEADER_BLOCKS = 32
"""Rendered header blocks remembered (a session's repeat; a 2026-07-28 call's own headers may not)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
_TARGET = re.compile(r"[\x21-\x7e]+")
_METHODS = frozenset({"GET", "POST", "DELETE"})


def request_head(method: str, target: str, host: str, headers: Iterable[tuple[str, str]], length: int | None) -> bytes:
    """The request line and header block of one request (``Content-Length`` when ``length`` is given).

    Raises:
        httpx.LocalProtocolError: a method, target, header name or value that would not stay one
            field of one request (a line break, another control character, a non-ASCII character).
    """
    return _head(_request_line(method, target, host), header_block(headers), length)


def header_block(headers: Iterable[tuple[str, str]]) -> str:
    """``name: value`` lines, each checked to be one plain-ASCII field.

    Raises:
        httpx.LocalProtocolError: a name that is not a token, a value with a control or non-ASCII character.
    """
    lines = []
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise httpx.LocalProtocolError(f"refused to send header {name[:40]!r}: not a single, plain-ASCII field")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


def _request_line(method: str, target: str, host: str) -> str:
    if method not in _METHODS or not _TARGET.fullmatch(target) or not _FIELD_VALUE.fullmatch(host) or not host:
        raise httpx.LocalProtocolError("refused to send a malformed request line or host")
    return f"{method} {target} HTTP/1.1\r\nhost: {host}\r\n"


def _head(start: str, block: str, length: int | None) -> bytes:
    framing = "\r\n" if length is None else f"content-length: {length}\r\n\r\n"
    return (start + block + framing).encode("ascii")


class ReplyHeaders:
    """An answer's headers, looked up by name in any case; a repeated header reads as its values joined by ``, ``."""

    __slots__ = ("_fields",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        fields: dict[str, str] = {}
        for name, value in raw:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            fields[key] = f"{fields[key]}, {text}" if key in fields else text
        self._fields = fields

    def get(self, name: str, default: str = "") -> str:
        return self._fields.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields


class _Connection:
    """One HTTP/1.1 connection: its wire and the answer being read on it."""

    __slots__ = ("answer", "idle_since", "wire")

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.answer = HttpAnswer()
        self.idle_since = 0.0

    def quiet(self) -> bool:
        """Still open with nothing unread: safe to send on (bytes nobody asked for, or the peer's close, are not)."""
        return self.wire.quiet()

    def ended_already(self) -> bool:
        """The answer's end has been read (its unread rest, if any, was already here): nothing is left."""
        answer = self.answer
        while answer.events and answer.events[0] is not None:
            answer.events.popleft()
        return answer.ended

    async def next_event(self, read: float | None, *, whole: bool = False) -> AnswerEvent:
        """The next event of the answer (head, body chunk, ``None`` at its end), reading the socket as needed.

        ``read`` bounds each silence; with ``whole``, the wait for the event in all (a head that trickles in).

        Raises:
            httpx.ReadTimeout: nothing arrived within ``read`` seconds.
            httpx.ReadError: the connection broke.
            httpx.RemoteProtocolError: the bytes are not HTTP/1.1, or the answer was cut short.
        """
        answer = self.answer
        wait, deadline = read, None
        if whole and read is not None and not answer.events:
            deadline = time.monotonic() + read
        while not answer.events:
            if deadline is not None:
                wait = max(0.0, deadline - time.monotonic())
            try:
                chunk = await self.wire.receive(wait)
            except TimeoutError:
                raise httpx.ReadTimeout("reading timed out") from None
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
            _feed(answer, chunk)
        return answer.events.popleft()

    async def aclose(self) -> None:
        await self.wire.aclose()


class HttpTransport:
    """Keep-alive HTTP/1.1 connections to ``url``'s origin, at most ``max_connections`` busy, ``max_keepalive`` idle."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int,
        max_keepalive: int,
        headers: Iterable[tuple[str, str]] = (),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``headers`` go on every request (checked here, once).

        Raises:
            httpx.LocalProtocolError: the URL or ``headers`` would not make well-formed requests.
        """
        parsed = httpx.URL(url)
        self.scheme = parsed.scheme
        self.hostname = parsed.host
        self.port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 80)
        self.host = parsed.netloc.decode("ascii")
        """The ``Host`` header: host and any explicit port, never user info."""
        self.target = parsed.raw_path.decode("ascii")
        self._starts = {
            method: _request_line(method, self.target, self.host) + header_block(headers) for method in _METHODS
        }
        self._blocks: dict[tuple[tuple[str, str], ...], str] = {}
        self._slots = anyio.Semaphore(max_connections, fast_acquire=True)
        self._max_keepalive = max_keepalive
        self._ssl = ssl_context
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._closed = False

    async def send(
        self,
        method: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | None,
        *,
        connect: float,
        write: float,
        read: float | None,
        pool: float | None = None,
    ) -> Reply:
        """Send one request in one write; its answer streams in through the ``Reply``, which must be closed.

        ``read`` bounds each silence while the answer comes (``None``: no bound, for an event stream).

        Raises:
            httpx.LocalProtocolError: the request would not be one well-formed request; nothing was sent.
            httpx.TransportError: a connect, write or read fault or timeout; never after a resend.
        """
        start = self._starts.get(method)
        if start is None:
            raise httpx.LocalProtocolError(f"refused to send method {method[:20]!r}")
        fields = tuple(headers)
        block = self._blocks.get(fields)
        if block is None:  # the session's headers repeat request after request: checked and rendered once
            block = header_block(fields)
            if len(self._blocks) >= MAX_HEADER_BLOCKS:
                self._blocks.clear()
            self._blocks[fields] = block
        data = _head(start, block, None if body is None else len(body))
        if body:
            data += body
        if self._closed:
            raise httpx.ConnectError("the HTTP client is closed")
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            with anyio.move_on_after(_bound(pool)) as waited:
                await self._slots.acquire()
            if waited.cancelled_caught:
                raise httpx.PoolTimeout("no free connection in time") from None
        try:
            connection = await self._connection(connect)
        except BaseException:
            self._slots.release()
            raise
        self._busy.add(connection)
        try:
            status, raw_headers = await self._exchange(connection, data, write, read)
        except BaseException:
            await self._finish(connection, done=False)
            raise
        return Reply(self, connection, status, raw_headers, read)

    async def _connection(self, connect: float) -> _Connection:
        expired = time.monotonic() - KEEPALIVE_EXPIRY  # not anyio.current_time(): several calls and a getpid
        while self._idle:
            connection = self._idle.pop()
            if connection.idle_since > expired and connection.quiet():
                return connection
            await connection.aclose()
        if self.scheme == "https" and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            with anyio.fail_after(connect):
                wire = await connect_wire(self.hostname, self.port, self._ssl if self.scheme == "https" else None)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("connecting timed out") from exc
        except (OSError, anyio.BrokenResourceError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return _Connection(wire)

    async def _exchange(
        self, connection: _Connection, data: bytes, write: float, read: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        """Write the request and read the answer's head; each wait bounded by a timer, not a cancel scope."""
        connection.answer = HttpAnswer()
        try:
            await connection.wire.send(data, write)
        except TimeoutError:
            raise httpx.WriteTimeout("sending timed out") from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__) from exc
        event = await connection.next_event(read, whole=True)  # the head, within ``read`` in all
        if not isinstance(event, tuple):  # only a bug in the reader could get here: the head comes first
            raise httpx.RemoteProtocolError("the server sent no HTTP answer")
        return event

    def _keep(self, connection: _Connection) -> bool:
        """Put ``connection`` back for reuse if its exchange completed cleanly; True if it was kept."""
        self._busy.discard(connection)
        if not self._closed and len(self._idle) < self._max_keepalive and connection.answer.reusable():
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
            self._slots.release()
            return True
        return False

    async def _finish(self, connection: _Connection, *, done: bool) -> None:
        """Put ``connection`` back for reuse if its exchange completed cleanly, else close it (bounded)."""
        if done and self._keep(connection):
            return
        self._busy.discard(connection)
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
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


class Reply:
    """One answer: ``status_code``, ``headers``, the body as it arrives; ``aclose`` hands the connection back."""

    __slots__ = ("_connection", "_done", "_read", "_released", "_transport", "headers", "status_code")

    def __init__(
        self,
        transport: HttpTransport,
        connection: _Connection,
        status: int,
        headers: list[tuple[bytes, bytes]],
        read: float | None,
    ) -> None:
        self._transport = transport
        self._connection = connection
        self._read = read
        self._done = False
        self._released = False
        self.status_code = status
        self.headers = ReplyHeaders(headers)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive (each silence bounded by the read timeout).

        Raises:
            httpx.ReadTimeout | httpx.ReadError | httpx.RemoteProtocolError: as ``next_event``.
        """
        while (chunk := await self._next_chunk()) is not None:
            yield chunk

    async def read_body(self, limit: int) -> bytes | None:
        """The whole body, or ``None`` as soon as it grows past ``limit`` bytes (the rest is not read).

        Not through ``aiter_bytes``: an async generator costs more than the rest of a small answer's read.

        Raises:
            httpx.ReadTimeout | httpx.ReadError | httpx.RemoteProtocolError: as ``next_event``.
        """
        chunks: list[bytes] = []
        size = 0
        while (chunk := await self._next_chunk()) is not None:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _next_chunk(self) -> bytes | None:
        """The body's next chunk; ``None`` once it ended."""
        while not self._done:
            event = await self._connection.next_event(self._read)
            if isinstance(event, bytes):
                return event
            if event is not None:
                raise httpx.RemoteProtocolError("unexpected HTTP event in an answer")
            self._done = True
        return None

    async def aread(self) -> bytes:
        """The whole body (unbounded: for tests and small answers the caller knows)."""
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        """Release the connection: kept for reuse when the answer was read whole, else closed (bounded)."""
        if self._released:
            return
        self._released = True
        done = self._done or self._connection.ended_already()
        if done and self._transport._keep(self._connection):
            return
        await self._transport._finish(self._connection, done=False)


def _feed(answer: HttpAnswer, chunk: bytes) -> None:
    try:
        answer.feed(chunk)
    except httptools.HttpParserError as exc:
        raise httpx.RemoteProtocolError(f"not an HTTP/1.1 answer: {exc}") from exc
    except EOFError:
        raise httpx.RemoteProtocolError("the server closed the connection mid-answer") from None


def _bound(seconds: float | None) -> float:
    return float("inf") if seconds is None else seconds
