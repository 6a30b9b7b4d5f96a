"""A tiny HTTP/1.1 server on a unix socket, for faults a real OPA cannot produce on demand.

Decisions are always tested against the real OPA binary; this server only injects garbage bodies,
error pages, stalls, dropped connections and odd framings into the OPA client.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.lowlevel
import h11


@dataclass(frozen=True)
class Seen:
    """A request the fake server received."""

    method: str
    target: str
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    connection: int
    """Which accepted connection it came on (1, 2, ...)."""


@dataclass
class Reply:
    """What the fake server sends back; ``raw`` replaces the whole answer with these bytes."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes | None = None
    close: bool = False
    """Close the connection after the answer (without saying so, like an idle timeout)."""
    chunked: bool = False
    trailer: bytes = b""
    """Bytes sent after the answer, in a write of their own: an answer nobody asked for."""


Handler = Callable[[Seen], Awaitable[Reply]]


def json_reply(body: str, status: int = 200) -> Reply:
    return Reply(status=status, body=body.encode(), headers=[("Content-Type", "application/json")])


async def _receive(sock: socket.socket) -> bytes:
    while True:
        try:
            return sock.recv(65536)
        except BlockingIOError:
            await anyio.wait_readable(sock)


async def _send(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            await anyio.wait_writable(sock)


async def _next_request(conn: h11.Connection, sock: socket.socket, number: int) -> Seen | None:
    request: h11.Request | None = None
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                conn.receive_data(await _receive(sock))
            except OSError:
                return None
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            return None
    assert request is not None
    headers = {k.decode(): v.decode() for k, v in request.headers}
    return Seen(request.method.decode(), request.target.decode(), headers, body, number)


async def _serve_connection(sock: socket.socket, number: int, handler: Handler, seen: list[Seen]) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while (request := await _next_request(conn, sock, number)) is not None:
            seen.append(request)
            reply = await handler(request)
            if reply.raw is not None:
                await _send(sock, reply.raw)
                return
            headers = list(reply.headers)
            headers.append(
                ("Transfer-Encoding", "chunked") if reply.chunked else ("Content-Length", str(len(reply.body)))
            )
            out = conn.send(h11.Response(status_code=reply.status, headers=headers))
            if reply.chunked:
                half = len(reply.body) // 2
                out += conn.send(h11.Data(data=reply.body[:half])) + conn.send(h11.Data(data=reply.body[half:]))
            elif reply.body:
                out += conn.send(h11.Data(data=reply.body))
            out += conn.send(h11.EndOfMessage())
            await _send(sock, out)
            if reply.trailer:
                await anyio.lowlevel.checkpoint()
                await _send(sock, reply.trailer)
            if reply.close:
                return
            conn.start_next_cycle()
    except OSError:
        return
    finally:
        sock.close()


@asynccontextmanager
async def fake_http(handler: Handler) -> AsyncIterator[tuple[str, list[Seen]]]:
    """Serve ``handler`` on a fresh unix socket; yields its ``unix://`` URL and the requests seen."""
    seen: list[Seen] = []
    with tempfile.TemporaryDirectory(prefix="regogate-fake-") as directory:
        path = str(Path(directory) / "http.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen()
        listener.setblocking(False)
        try:
            async with anyio.create_task_group() as tg:

                async def accept() -> None:
                    accepted = 0
                    while True:
                        try:
                            sock, _ = listener.accept()
                        except BlockingIOError:
                            await anyio.wait_readable(listener)
                            continue
                        sock.setblocking(False)
                        accepted += 1
                        tg.start_soon(_serve_connection, sock, accepted, handler, seen)

                tg.start_soon(accept)
                yield f"unix://{path}", seen
                tg.cancel_scope.cancel()
        finally:
            with suppress(OSError):
                listener.close()
