"""Serve the gateway over HTTP: the Starlette app on uvicorn, inside regogate's own event loop.

uvicorn runs as a task next to the session pool; regogate keeps the signals. SIGTERM or SIGINT starts
a graceful shutdown: new sessions and requests are refused, calls in flight get ``drain_timeout`` to
be answered (their counters settle as they are), then every session is closed (its counters settled,
its upstream stopped), then uvicorn closes its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from regogate.core import ConfigError
from regogate.proxy.transports._http_guard import NO_STORE
from regogate.proxy.transports._mcp_endpoint import McpEndpoint
from regogate.proxy.transports._session_pool import SessionPool

__all__ = ["Listener", "Readiness", "serve_http"]

logger = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
UVICORN_GRACE = 2.0
"""After the sessions are closed, how long uvicorn waits for connections to finish before cancelling them."""
READY_TIMEOUT = 2.0
"""Bound on one readiness check (OPA's bundles, the store's ping)."""
KEEP_ALIVE = 30
"""Seconds an idle keep-alive connection stays open."""

Readiness = Callable[[], Awaitable[str | None]]
"""What is not ready (``None`` when everything is)."""


@dataclass(frozen=True)
class Listener:
    """Where and how the gateway listens."""

    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_proxies: tuple[str, ...] = ()
    """Proxies in front whose ``X-Forwarded-Proto``/``-For`` are believed; with none, no header is (uvicorn's
    default would believe any process on loopback, letting it change the scheme a 401 points clients to)."""

    def bind(self) -> socket.socket:
        """The listening socket (port 0 picks a free one).

        Raises:
            ConfigError: the address cannot be bound.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host.strip("[]"), self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"--listen {self.host}:{self.port}: {exc.strerror or exc}") from exc
        sock.listen(128)
        sock.set_inheritable(False)
        return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: regogate's shutdown sequence owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _OneSendTransport:
    """A connection's transport whose writes made in one turn of the event loop leave in one ``send``.

    uvicorn writes a response's head and its body apart; on loopback each write is a segment that wakes
    the client, so a JSON answer cost two wake-ups (and two reads) instead of one. A head leaves with
    the body written next in the same turn, as soon as that comes; else (a stream's head, a later chunk)
    at the end of the turn, or before the connection closes.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending:  # the body right after its head: both leave now, before the rest of the turn runs
            self._pending.append(bytes(data))
            self._flush()
            return
        self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(data) for data in self._pending)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (llhttp, in C) over ``_OneSendTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_OneSendTransport(transport, self.loop))  # type: ignore[arg-type]


class _Front:
    """``/mcp`` straight to its endpoint, every other path through Starlette.

    ``/mcp`` carries every call: Starlette's router and its two middleware layers cost more there
    than the endpoint's own work, and add nothing (the endpoint answers its own errors; uvicorn
    answers 500 to an exception, as Starlette would).
    """

    def __init__(self, endpoint: McpEndpoint, rest: ASGIApp) -> None:
        self._endpoint = endpoint
        self._rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/mcp":
            await self._endpoint(scope, receive, send)
        else:
            await self._rest(scope, receive, send)


def build_app(endpoint: McpEndpoint, ready: Readiness, extra: list[Route] | None = None) -> ASGIApp:
    """The routes: ``/mcp``, ``/healthz``, ``/readyz`` and any ``extra`` (the auth metadata)."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    async def readyz(request: Request) -> Response:
        with anyio.move_on_after(READY_TIMEOUT):
            problem = await ready()
            if problem is None:
                return JSONResponse({"status": "ready"}, headers=NO_STORE)
            return JSONResponse({"status": "not ready", "reason": problem}, status_code=503, headers=NO_STORE)
        return JSONResponse({"status": "not ready", "reason": "check timed out"}, status_code=503, headers=NO_STORE)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *(extra or []),
        Route("/mcp", endpoint),  # an ASGI app: every method reaches it (no redirect to /mcp/)
    ]
    return _Front(endpoint, Starlette(routes=routes))


async def serve_http(
    app: ASGIApp,
    pool: SessionPool,
    listener: Listener,
    sock: socket.socket,
    *,
    drain_timeout: float,
    on_listening: Callable[[str], None],
) -> None:
    """Serve on ``sock`` (from ``listener.bind``) until SIGTERM/SIGINT, then shut down gracefully (see the
    module docstring).

    Raises:
        ConfigError: the TLS files cannot be read.
    """
    tls: dict[str, object] = {}
    if listener.tls_cert is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(listener.tls_cert, listener.tls_key)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise ConfigError(f"--tls-cert/--tls-key: {exc}") from exc
        tls = {"ssl_certfile": str(listener.tls_cert), "ssl_keyfile": str(listener.tls_key)}
    config = uvicorn.Config(
        app,
        http=_Protocol,
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=bool(listener.trusted_proxies),
        forwarded_allow_ips=list(listener.trusted_proxies) or None,
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=int(UVICORN_GRACE),
        **tls,  # type: ignore[arg-type]
    )
    server = _Server(config)
    host, port = sock.getsockname()[:2]
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    stop, served = anyio.Event(), anyio.Event()

    async def on_signals(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(*SHUTDOWN_SIGNALS) as signals:  # kept through the whole shutdown
            task_status.started()
            async for signum in signals:
                logger.warning("got %s: draining calls in flight, then stopping", signal.Signals(signum).name)
                stop.set()

    async def run_server() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            served.set()
            stop.set()

    async with anyio.create_task_group() as tg:
        await tg.start(on_signals)
        tg.start_soon(pool.reap_idle)
        tg.start_soon(run_server)
        on_listening(f"{scheme}://{shown}:{port}/mcp")
        await stop.wait()
        with anyio.CancelScope(shield=True):
            await pool.drain(drain_timeout)
            server.should_exit = True
            with anyio.move_on_after(UVICORN_GRACE + 1.0):
                await served.wait()
        tg.cancel_scope.cancel()
    sock.close()
