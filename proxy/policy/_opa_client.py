"""An async client for OPA's Data API: one POST per decision, every failure a coded ``DecisionError``.

The client reaches OPA over TCP (``http://host:port``, ``https://…``) or a unix socket
(``unix:///path/opa.sock``). It speaks HTTP/1.1 itself, through the ``h11`` state machine over
anyio sockets, and keeps a few connections alive for reuse: a decision is on the hot path of every
``tools/call``, and a general-purpose HTTP client cost ~0.6 ms of CPU per request here, ten times
OPA's own evaluation (see docs/benchmarks.md).

``retarget`` moves it to another OPA without dropping requests already in flight: they finish on
the old connection pool, which is closed once they are done (the embedded sidecar's reload uses it).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
from collections.abc import Sequence
from types import TracebackType
from typing import Final
from urllib.parse import quote, urlsplit

import anyio
import anyio.abc
import h11

from regogate.core import ConfigError, DecisionError

__all__ = ["DEFAULT_TIMEOUT", "OpaClient"]

logger = logging.getLogger(__name__)

#: A decision takes well under a millisecond; the slack only absorbs a slow, loaded CI machine.
DEFAULT_TIMEOUT: Final = 2.0
#: Connecting to a local OPA is immediate when it is up; waiting longer only delays the denial.
CONNECT_TIMEOUT: Final = 1.0
#: After a retarget, how long requests still on the old OPA may take before its pool is closed.
DRAIN_TIMEOUT: Final = DEFAULT_TIMEOUT + 1.0
#: Calls are decided concurrently (up to the relay's 64 pending); this many connections at once.
MAX_CONNECTIONS: Final = 16
#: Connections kept open between bursts; the rest are closed when their request is done.
MAX_KEEPALIVE: Final = 8
#: An idle connection older than this is closed rather than reused (servers drop idle ones too).
KEEPALIVE_EXPIRY: Final = 30.0
#: OPA answers a decision in well under a kilobyte; a bigger answer is a fault, not a decision.
MAX_ANSWER_BYTES: Final = 64 * 1024 * 1024
#: One socket read; OPA's answers fit in one.
READ_CHUNK: Final = 64 * 1024
#: The Host header over a unix socket; it is never resolved.
UDS_HOST: Final = "opa"
#: A builtin error must fail the decision, not quietly make a deny rule undefined.
QUERY_SUFFIX: Final = "?strict-builtin-errors=true"

_Header = tuple[bytes, bytes]


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
        self.headers: tuple[_Header, ...] = ((b"Host", host_header.encode("idna")),)


class _SocketWire:
    """A non-blocking socket awaited with ``anyio.wait_readable``/``wait_writable`` (unix and plain TCP).

    Cheaper than a stream object per call, and safe to cancel mid-wait (anyio's unix socket stream
    can resolve a read future that a timeout already cancelled).
    """

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                await anyio.wait_writable(self.sock)

    async def receive(self) -> bytes:
        """Some bytes, or ``b""`` at end of stream."""
        while True:
            try:
                return self.sock.recv(READ_CHUNK)
            except BlockingIOError:
                await anyio.wait_readable(self.sock)

    async def aclose(self) -> None:
        if self.sock.fileno() >= 0:
            anyio.notify_closing(self.sock)  # a task waiting on it gets ClosedResourceError
            self.sock.close()


class _StreamWire:
    """An anyio byte stream (TLS to an ``https://`` OPA)."""

    __slots__ = ("stream",)

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def receive(self) -> bytes:
        try:
            return await self.stream.receive(READ_CHUNK)
        except anyio.EndOfStream:
            return b""

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)


_Wire = _SocketWire | _StreamWire
_BROKEN = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


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

    __slots__ = ("h11", "idle_since", "wire")

    def __init__(self, wire: _Wire) -> None:
        self.wire = wire
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0

    async def exchange(self, method: str, target: str, headers: Sequence[_Header], body: bytes) -> tuple[int, bytes]:
        """Send one request and read its whole answer.

        Raises:
            _Stale: the server had closed the connection before answering.
            DecisionError: ``opa_unreachable`` (broken connection, not HTTP) or ``opa_error`` (answer too big).
        """
        conn = self.h11
        try:
            data = conn.send(h11.Request(method=method, target=target, headers=list(headers)))
            if body:
                data += conn.send(h11.Data(data=body))
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:  # only a bug could get here: the connection is fresh or reset
            raise DecisionError("opa_unreachable", f"cannot send the request: {exc}") from exc
        try:
            await self.wire.send(data)
        except _BROKEN as exc:
            raise _Stale from exc
        status = 0
        parts: list[bytes] = []
        size = 0
        answered = False
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise DecisionError("opa_unreachable", f"OPA's answer is not HTTP/1.1: {exc}") from exc
            if event is h11.NEED_DATA:
                try:
                    chunk = await self.wire.receive()
                except _BROKEN as exc:
                    if not answered:
                        raise _Stale from exc
                    raise DecisionError("opa_unreachable", f"the connection broke: {exc!r}") from exc
                if not chunk and not answered:
                    raise _Stale
                answered = True
                conn.receive_data(chunk)
                continue
            kind = type(event)
            if kind is h11.Response:
                status = event.status_code  # type: ignore[union-attr]
            elif kind is h11.Data:
                size += len(event.data)  # type: ignore[union-attr]
                if size > MAX_ANSWER_BYTES:
                    raise DecisionError("opa_error", f"OPA's answer is larger than {MAX_ANSWER_BYTES} bytes")
                parts.append(event.data)  # type: ignore[union-attr]
            elif kind is h11.EndOfMessage:
                break
            elif event is h11.PAUSED or kind is h11.ConnectionClosed:
                raise DecisionError("opa_unreachable", "OPA closed the connection before answering")
            # InformationalResponse (1xx): skip.
        return status, parts[0] if len(parts) == 1 else b"".join(parts)

    def reusable(self) -> bool:
        conn = self.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        return False

    async def aclose(self) -> None:
        await self.wire.aclose()


class _Pool:
    """Keep-alive connections to one OPA address: at most ``MAX_CONNECTIONS`` at once."""

    __slots__ = ("_active", "_idle", "_slots", "_ssl", "address", "closed")

    def __init__(self, address: _Address) -> None:
        self.address = address
        self.closed = False
        self._idle: list[_Connection] = []
        self._active: set[_Connection] = set()
        self._slots = anyio.Semaphore(MAX_CONNECTIONS, fast_acquire=True)
        self._ssl: ssl.SSLContext | None = None

    async def _connect(self, timeout: float) -> _Connection:
        address = self.address
        with anyio.fail_after(min(timeout, CONNECT_TIMEOUT)):
            if address.path is not None:
                return _Connection(_SocketWire(await _connect_socket(socket.AF_UNIX, address.path)))
            if address.tls:
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
                stream = await anyio.connect_tcp(address.host, address.port, tls=True, ssl_context=self._ssl)
                return _Connection(_StreamWire(stream))
            failure: OSError = OSError(f"{address.host} has no address")
            for family, _, _, _, sockaddr in await anyio.getaddrinfo(
                address.host, address.port, type=socket.SOCK_STREAM
            ):
                try:
                    return _Connection(_SocketWire(await _connect_socket(family, sockaddr)))
                except OSError as exc:
                    failure = exc
            raise failure

    async def request(
        self, method: str, target: str, headers: Sequence[_Header], body: bytes, timeout: float
    ) -> tuple[int, bytes]:
        """One request on an idle connection (or a new one); a stale idle one is replaced once.

        Raises:
            DecisionError: ``opa_unreachable`` (cannot connect, broken, closed) or ``opa_error``.
            TimeoutError: connecting took longer than the connect timeout.
        """
        if self.closed:
            raise DecisionError("opa_unreachable", f"the client for OPA at {self.address.url} is closed")
        async with self._slots:
            for attempt in (0, 1):
                connection = await self._idle_connection() if attempt == 0 else None
                reused = connection is not None
                if connection is None:
                    try:
                        connection = await self._connect(timeout)
                    except OSError as exc:
                        raise DecisionError("opa_unreachable", f"OPA at {self.address.url}: {exc!r}") from exc
                self._active.add(connection)
                try:
                    answer = await connection.exchange(method, self.address.prefix + target, headers, body)
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
                    connection.idle_since = anyio.current_time()
                    self._idle.append(connection)
                else:
                    await connection.aclose()
                return answer
        raise AssertionError("unreachable")

    async def _idle_connection(self) -> _Connection | None:
        """The most recently used idle connection that has not expired; expired ones are closed."""
        expired = anyio.current_time() - KEEPALIVE_EXPIRY
        while self._idle:
            connection = self._idle.pop()
            if connection.idle_since > expired:
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


class _Target:
    """One OPA address with its connection pool and the requests in flight on it."""

    __slots__ = ("drained", "inflight", "pool", "retired", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool = _Pool(_Address(url))
        self.inflight = 0
        self.retired = False
        self.drained = anyio.Event()

    def leave(self) -> None:
        self.inflight -= 1
        if self.retired and self.inflight == 0:
            self.drained.set()


#: Inputs are trees built from parsed JSON; skipping the cycle check saves a third of the encoding.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)


def _encode(input_doc: object) -> bytes:
    try:
        return _ENCODER.encode({"input": input_doc}).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise DecisionError("opa_error", f"the input cannot be sent to OPA as JSON: {exc}") from exc


def _opa_error(status: int, content: bytes) -> DecisionError:
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        detail = f"OPA answered HTTP {status} {body['code']}: {body.get('message', '')}"
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            detail += f" ({first.get('code')}: {first.get('message')}"
            location = first.get("location")
            if isinstance(location, dict):
                detail += f" at {location.get('file')}:{location.get('row')}"
            detail += ")"
    else:
        detail = f"OPA answered HTTP {status}: {content[:200].decode('utf-8', errors='replace')!r}"
    return DecisionError("opa_error", detail)


class OpaClient:
    """Asks one OPA server for decisions over reused keep-alive connections."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Prepare a client for ``url``; nothing is connected until the first request.

        Raises:
            ConfigError: ``url`` is neither ``http(s)://host:port`` nor ``unix:///path``.
        """
        self._timeout = timeout
        self._target = _Target(url)
        self._paths: dict[tuple[str, bool], str] = {}

    @property
    def url(self) -> str:
        """The address currently asked."""
        return self._target.url

    async def __aenter__(self) -> OpaClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _query_url(self, path: str, metrics: bool) -> str:
        cache_key = (path, metrics)
        url = self._paths.get(cache_key)
        if url is None:
            segments = [quote(part, safe="") for part in path.strip("/").split("/") if part]
            url = "/v1/data/" + "/".join(segments) + QUERY_SUFFIX + ("&metrics=true" if metrics else "")
            self._paths[cache_key] = url
        return url

    async def _send(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        """One request to the current OPA, bounded by the client's timeout.

        Raises:
            DecisionError: ``opa_unreachable``, ``opa_timeout`` or ``opa_error`` (answer too big).
        """
        current = self._target
        headers = current.pool.address.headers
        if body:
            headers += ((b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode()))
        current.inflight += 1
        try:
            # A bare deadline scope: fail_after's generator wrapper costs more than the rest of this method.
            with anyio.CancelScope(deadline=anyio.current_time() + self._timeout) as scope:
                return await current.pool.request(method, target, headers, body, self._timeout)
        except TimeoutError as exc:  # the connect timeout
            raise DecisionError("opa_timeout", f"OPA at {current.url} did not answer in {self._timeout} s") from exc
        finally:
            current.leave()
        assert scope.cancelled_caught
        raise DecisionError("opa_timeout", f"OPA at {current.url} did not answer in {self._timeout} s")

    async def _query(self, path: str, input_doc: object, metrics: bool) -> dict[str, object]:
        status, content = await self._send("POST", self._query_url(path, metrics), _encode(input_doc))
        if status != 200:
            raise _opa_error(status, content)
        try:
            answer = json.loads(content)
        except ValueError as exc:
            raise DecisionError("decision_malformed", f"OPA's answer is not JSON: {exc}") from exc
        if not isinstance(answer, dict):
            raise DecisionError("decision_malformed", "OPA's answer is not a JSON object")
        if "result" not in answer:
            raise DecisionError("decision_undefined", f"data.{path.strip('/').replace('/', '.')} is undefined")
        return answer

    async def evaluate(self, path: str, input_doc: object) -> tuple[object, str | None]:
        """Evaluate ``data.<path>`` with ``input_doc``; return OPA's result and decision id.

        ``path`` is slash-separated, e.g. ``regogate/gate/decision``. The decision id is ``None``
        unless OPA's decision logging is on.

        Raises:
            DecisionError: ``opa_unreachable``, ``opa_timeout``, ``opa_error`` (non-200, with OPA's
                code and message), ``decision_undefined`` (no ``result``) or ``decision_malformed``
                (the body is not a JSON object).
        """
        answer = await self._query(path, input_doc, metrics=False)
        decision_id = answer.get("decision_id")
        return answer["result"], decision_id if isinstance(decision_id, str) else None

    async def evaluate_with_metrics(self, path: str, input_doc: object) -> tuple[object, str | None, int | None]:
        """Like ``evaluate``, also returning OPA's ``timer_rego_query_eval_ns`` (``None`` if absent).

        Raises:
            DecisionError: as ``evaluate``.
        """
        answer = await self._query(path, input_doc, metrics=True)
        decision_id = answer.get("decision_id")
        metrics = answer.get("metrics")
        eval_ns = metrics.get("timer_rego_query_eval_ns") if isinstance(metrics, dict) else None
        return (
            answer["result"],
            decision_id if isinstance(decision_id, str) else None,
            eval_ns if isinstance(eval_ns, int) else None,
        )

    async def health(self, *, bundles: bool = False) -> bool:
        """Whether OPA answers ``GET /health`` (``/health?bundles`` when ``bundles``) with 200."""
        try:
            status, _ = await self._send("GET", "/health?bundles" if bundles else "/health")
        except DecisionError:
            return False
        return status == 200

    async def version(self) -> str:
        """OPA's version, from the labels of ``GET /v1/config``.

        Raises:
            DecisionError: OPA cannot be reached (``opa_unreachable``, ``opa_timeout``) or does not say
                (``opa_error``).
        """
        status, content = await self._send("GET", "/v1/config")
        if status != 200:
            raise _opa_error(status, content)
        try:
            version = json.loads(content)["result"]["labels"]["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DecisionError("opa_error", "OPA's /v1/config does not carry labels.version") from exc
        if not isinstance(version, str):
            raise DecisionError("opa_error", "OPA's /v1/config labels.version is not a string")
        return version

    async def retarget(self, url: str, *, drain_timeout: float = DRAIN_TIMEOUT) -> None:
        """Send new requests to ``url``; return once requests in flight to the old address are done.

        Requests still running after ``drain_timeout`` seconds are cut off (they fail as
        ``opa_unreachable``); the old pool is then closed.

        Raises:
            ConfigError: ``url`` is not a valid OPA address; the client keeps its old target.
        """
        old = self._target
        self._target = _Target(url)
        await self._retire(old, drain_timeout)

    async def _retire(self, target: _Target, drain_timeout: float) -> None:
        target.retired = True
        with anyio.CancelScope(shield=True):
            if target.inflight:
                with anyio.move_on_after(drain_timeout) as scope:
                    await target.drained.wait()
                if scope.cancelled_caught:
                    logger.warning("closing OPA pool %s with %d requests still in flight", target.url, target.inflight)
            await target.pool.aclose()

    async def aclose(self) -> None:
        """Close the connections; requests in flight are cut off."""
        await self._retire(self._target, drain_timeout=0)
