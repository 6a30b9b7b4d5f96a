"""HTTP/1.1 to one OPA: a small pool of keep-alive connections, each answer read by ``httptools``.

OPA is reached over TCP (``http://host:port``, ``https://…``) or a unix socket
(``unix:///path/opa.sock``). A decision is on the hot path of every ``tools/call``, and a
general-purpose HTTP client cost ~0.6 ms of CPU per request here, ten times OPA's own evaluation
(see docs/benchmarks.md), so this layer writes its fixed-form requests itself and reads answers
with ``httptools`` (llhttp, the parser uvicorn uses): ~4 µs an answer where the pure-Python
``h11`` state machine took ~50-180 µs (bench/notes.md).

``OpaTransport`` is the seam the OPA client talks through (one request in, status and body out,
``aclose``); ``HttpTransport`` is the real one, and tests can pass another to inject faults.
"""

from __future__ import annotations

import math
import os
import re
import socket
import ssl
import time
from contextlib import AbstractContextManager
from typing import Final, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.abc
import httptools

from regogate.core import ConfigError, DecisionError
from regogate.proxy.relay import HttpAnswer, SocketWire, StreamWire, Wire

__all__ = ["CONNECT_TIMEOUT", "HttpTransport", "OpaTransport"]

#: Connecting to a local OPA is immediate when it is up; waiting longer only delays the denial.
CONNECT_TIMEOUT: Final = 1.0
#: Calls are decided concurrently (up to the relay's 64 pending); this many connections at once.
MAX_CONNECTIONS: Final = 16
#: Connections kept open between bursts; the rest are closed when their request is done.
MAX_KEEPALIVE: Final = 8
#: An idle connection older than this is closed rather than reused (servers drop idle ones too).
KEEPALIVE_EXPIRY: Final = 30.0
#: OPA answers a decision in well under a kilobyte; a bigger answer is a fault, not a decision.
MAX_ANSWER_BYTES: Final = 64 * 1024 * 1024
#: The Host header over a unix socket; it is never resolved.
UDS_HOST: Final = "opa"

_JSON_TYPE: Final = b"Content-Type: application/json\r\n"
#: A request target goes on the request line as is: visible ASCII only (no space, CR or LF).
_TARGET: Final = re.compile(r"[!-~]+")


class OpaTransport(Protocol):
    """How the OPA client reaches one OPA: one HTTP request in, its status and whole body out."""

    async def request(
        self, method: str, target: str, body: bytes = b"", *, deadline: float = math.inf
    ) -> tuple[int, bytes]:
        """Send ``method target`` (with ``body`` as JSON when not empty) and read the answer by ``deadline``
        (``time.monotonic()``; ``inf``: the caller bounds the request).

        Raises:
            DecisionError: ``opa_unreachable`` (cannot connect, broken, closed, not HTTP) or
                ``opa_error`` (the answer is too big).
            TimeoutError: the deadline passed, or connecting took longer than the transport's connect timeout.
        """
        ...

    async def aclose(self) -> None:
        """Close every connection; requests in flight fail as ``opa_unreachable``."""
        ...


class _Stale(Exception):
    """A reused keep-alive connection was closed by the server before it answered."""


class _Address:
    """Where one OPA listens, and the fixed headers every request to it carries."""

    __slots__ = ("headers", "host", "path", "port", "prefix", "tls", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.path: str | None = None
        self.prefix = ""
        self.host, self.port, self.tls = UDS_HOST, 0, False
        if url.startswith("unix://"):
            self.path = url.removeprefix("unix://")
            if not self.path:
                raise ConfigError(f"OPA address {url!r} names no socket path (expected unix:///path/to/opa.sock)")
            host_header = UDS_HOST
        elif url.startswith(("http://", "https://")):
            try:
                parts = urlsplit(url)
                port = parts.port
            except ValueError as exc:
                raise ConfigError(f"OPA address {url!r}: {exc}") from exc
            if not parts.hostname:
                raise ConfigError(f"OPA address {url!r} names no host")
            self.prefix = parts.path.rstrip("/")
            self.tls = parts.scheme == "https"
            self.host, self.port = parts.hostname, port or (443 if self.tls else 80)
            host_header = parts.netloc
        else:
            raise ConfigError(f"OPA address {url!r} must start with http://, https:// or unix://")
        self.headers = b"Host: " + host_header.encode("idna") + b"\r\n"


_BROKEN = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


def _left(deadline: float) -> float | None:
    """Seconds until ``deadline`` (``time.monotonic()``; ``None``: no deadline)."""
    return None if deadline == math.inf else max(0.0, deadline - time.monotonic())


def _bounded(deadline: float) -> AbstractContextManager[anyio.CancelScope]:
    """A scope that fails at ``deadline`` (``time.monotonic()``), for the rare waits that are not reads."""
    return anyio.fail_after(_left(deadline))


async def _connect_socket(family: int, address: str | tuple[object, ...]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                sock.connect(address)
            except BlockingIOError:
                await anyio.wait_writable(sock)
                if family == socket.AF_UNIX:
                    continue  # a full listen backlog: try again once it drains
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise OSError(error, os.strerror(error)) from None
            return sock
    except BaseException:
        sock.close()
        raise


class _Connection:
    """One keep-alive HTTP/1.1 connection to OPA."""

    __slots__ = ("idle_since", "keep_alive", "wire")

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.idle_since = 0.0
        self.keep_alive = False

    async def exchange(
        self, method: str, target: str, headers: bytes, body: bytes, deadline: float = math.inf
    ) -> tuple[int, bytes]:
        """Send one request and read its whole answer by ``deadline`` (``time.monotonic()``).

        Raises:
            _Stale: the server had closed the connection before answering.
            DecisionError: ``opa_unreachable`` (broken connection, not HTTP) or ``opa_error`` (answer too big).
            TimeoutError: the deadline passed (the connection's state is then unknown).
        """
        self.keep_alive = False
        if not _TARGET.fullmatch(target):  # only a bug could get here: targets are built from checked names
            raise DecisionError("opa_unreachable", f"cannot send the request: bad target {target!r}")
        try:
            request = b"%s %s HTTP/1.1\r\n%s\r\n%s" % (method.encode(), target.encode(), headers, body)
            await self.wire.send(request, _left(deadline))
        except TimeoutError:
            raise
        except _BROKEN as exc:
            raise _Stale from exc
        answer = HttpAnswer()
        status = 0
        parts: list[bytes] = []
        size = 0
        answered = False
        while not answer.ended:
            try:
                chunk = await self.wire.receive(_left(deadline))
            except TimeoutError:  # an OSError too, but not a broken connection
                raise
            except _BROKEN as exc:
                if not answered:
                    raise _Stale from exc
                raise DecisionError("opa_unreachable", f"the connection broke: {exc!r}") from exc
            if not chunk and not answered:
                raise _Stale
            answered = True
            try:
                answer.feed(chunk)
            except httptools.HttpParserError as exc:
                raise DecisionError("opa_unreachable", f"OPA's answer is not HTTP/1.1: {exc}") from exc
            except EOFError:
                raise DecisionError("opa_unreachable", "OPA closed the connection before answering") from None
            while answer.events:
                event = answer.events.popleft()
                if isinstance(event, bytes):
                    size += len(event)
                    if size > MAX_ANSWER_BYTES:
                        raise DecisionError("opa_error", f"OPA's answer is larger than {MAX_ANSWER_BYTES} bytes")
                    parts.append(event)
                elif event is not None:
                    status = event[0]
        self.keep_alive = answer.reusable()
        return status, parts[0] if len(parts) == 1 else b"".join(parts)

    def reusable(self) -> bool:
        """Whether the connection may carry another request: the answer was whole and nothing followed it.

        Bytes that came after the answer belong to no request of ours (an unsolicited or late answer);
        reading them as the next answer would pair a decision with the wrong call, so the connection goes.
        """
        return self.keep_alive

    def quiet(self) -> bool:
        """Whether the idle connection is still open and holds no unread bytes (checked before reuse)."""
        return self.wire.quiet()

    async def aclose(self) -> None:
        await self.wire.aclose()


class HttpTransport:
    """Keep-alive HTTP/1.1 connections to one OPA address: at most ``MAX_CONNECTIONS`` at once."""

    __slots__ = ("_active", "_connect_timeout", "_idle", "_slots", "_ssl", "address", "closed")

    def __init__(self, url: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        """Prepare connections to ``url``; nothing is connected until the first request.

        Raises:
            ConfigError: ``url`` is neither ``http(s)://host:port`` nor ``unix:///path``.
        """
        self.address = _Address(url)
        self._connect_timeout = connect_timeout
        self.closed = False
        self._idle: list[_Connection] = []
        self._active: set[_Connection] = set()
        self._slots = anyio.Semaphore(MAX_CONNECTIONS, fast_acquire=True)
        self._ssl: ssl.SSLContext | None = None

    async def _connect(self) -> _Connection:
        address = self.address
        with anyio.fail_after(self._connect_timeout):
            if address.path is not None:
                return _Connection(await SocketWire.open(await _connect_socket(socket.AF_UNIX, address.path)))
            if address.tls:
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
                stream = await anyio.connect_tcp(address.host, address.port, tls=True, ssl_context=self._ssl)
                return _Connection(StreamWire(stream))
            failure: OSError = OSError(f"{address.host} has no address")
            for family, _, _, _, sockaddr in await anyio.getaddrinfo(
                address.host, address.port, type=socket.SOCK_STREAM
            ):
                try:
                    return _Connection(await SocketWire.open(await _connect_socket(family, sockaddr)))
                except OSError as exc:
                    failure = exc
            raise failure

    async def request(
        self, method: str, target: str, body: bytes = b"", *, deadline: float = math.inf
    ) -> tuple[int, bytes]:
        """One request on an idle connection (or a new one), answered by ``deadline`` (``time.monotonic()``); a stale
        idle one is replaced once.

        The deadline bounds the reads by the loop's timer (a cancel scope per request cost more than the
        rest of the client's work); only the rare waits, for a free connection or to connect, take a scope.

        Raises:
            DecisionError: ``opa_unreachable`` (cannot connect, broken, closed) or ``opa_error``.
            TimeoutError: the deadline passed, or connecting took longer than the connect timeout.
        """
        if self.closed:
            raise DecisionError("opa_unreachable", f"the client for OPA at {self.address.url} is closed")
        headers = self.address.headers
        if body:
            headers += _JSON_TYPE + b"Content-Length: %d\r\n" % len(body)
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            with _bounded(deadline):
                await self._slots.acquire()
        try:
            for attempt in (0, 1):
                connection = await self._idle_connection() if attempt == 0 else None
                reused = connection is not None
                if connection is None:
                    try:
                        with _bounded(deadline):
                            connection = await self._connect()
                    except TimeoutError:
                        raise
                    except OSError as exc:
                        raise DecisionError("opa_unreachable", f"OPA at {self.address.url}: {exc!r}") from exc
                self._active.add(connection)
                try:
                    answer = await connection.exchange(method, self.address.prefix + target, headers, body, deadline)
                except _Stale:
                    self._active.discard(connection)
                    await connection.aclose()
                    if reused and not self.closed:
                        continue  # the server dropped an idle connection: one fresh try
                    raise DecisionError("opa_unreachable", f"OPA at {self.address.url} closed the connection") from None
                except BaseException:
                    self._active.discard(connection)
                    await connection.aclose()  # its state is unknown: never reuse it
                    raise
                self._active.discard(connection)
                if not self.closed and len(self._idle) < MAX_KEEPALIVE and connection.reusable():
                    connection.idle_since = time.monotonic()
                    self._idle.append(connection)
                else:
                    await connection.aclose()
                return answer
        finally:
            self._slots.release()
        raise AssertionError("unreachable")

    async def _idle_connection(self) -> _Connection | None:
        """The most recently used idle connection that has not expired; expired ones are closed."""
        expired = time.monotonic() - KEEPALIVE_EXPIRY
        while self._idle:
            connection = self._idle.pop()
            if connection.idle_since > expired and connection.quiet():
                return connection
            await connection.aclose()
        return None

    async def aclose(self) -> None:
        """Close every connection, idle or busy; busy requests fail as ``opa_unreachable``."""
        self.closed = True
        connections = [*self._idle, *self._active]
        self._idle.clear()
        self._active.clear()
        for connection in connections:
            await connection.aclose()
