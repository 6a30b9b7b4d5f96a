"""A lean keep-alive HTTP/1.1 MCP client for the benchmarks' direct and gateway paths."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping

from bench._session import BenchError

HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
PROTOCOL_VERSION = "2025-11-25"
INITIALIZE_PARAMS = {
    "protocolVersion": PROTOCOL_VERSION,
    "capabilities": {},
    "clientInfo": {"name": "b", "version": "1"},
}


class HttpSession:
    """One MCP session over one keep-alive HTTP/1.1 connection: requests written whole, answers read by hand.

    A load generator's client: http.client (its header parsing, a thread per client) cost ~420 µs of CPU
    per call on this 2-core VM, as much as OPA, competing with the gateway for the same cores. This one
    is a few tens of µs, and one thread drives all clients (``_throughput``). Only what the figures need
    is read: the status, ``Content-Length`` (an answer without one, e.g. an event stream, is an error
    here) and ``Mcp-Session-Id``.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port + b"".join(
            b"%s: %s\r\n" % (name.encode(), value.encode()) for name, value in HEADERS.items()
        )
        self._unread = b""
        self._next = 0

    def send(self, message: Mapping[str, object] | bytes) -> None:
        """POST ``message`` (a JSON-RPC message, or its encoding)."""
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.sock.sendall(self._head + b"content-length: %d\r\n\r\n" % len(body) + body)

    def answer(self, data: bytes = b"") -> bytes | None:
        """Take ``data`` read from the socket; the answer's body once it is whole, else ``None``."""
        self._unread += data
        end = self._unread.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self._unread[:end].split(b"\r\n")
        fields = {name.strip().lower(): value.strip() for name, _, value in (f.partition(b":") for f in head[1:])}
        if b"content-length" not in fields:
            raise BenchError(f"an answer without Content-Length: {self._unread[:200]!r}")
        size = int(fields[b"content-length"])
        if len(self._unread) < end + 4 + size:
            return None
        body = self._unread[end + 4 : end + 4 + size]
        self._unread = self._unread[end + 4 + size :]
        status = int(head[0].split(b" ", 2)[1])
        if status not in (200, 202):
            raise BenchError(f"HTTP {status}: {body[:200]!r}")
        session = fields.get(b"mcp-session-id")
        if session and b"mcp-session-id" not in self._head:
            self._head += b"mcp-session-id: %s\r\n" % session
        return body

    def post(self, message: Mapping[str, object] | bytes) -> bytes:
        """POST ``message`` and read its answer's body."""
        self.send(message)
        body = self.answer()
        while body is None:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("the server closed the connection")
            body = self.answer(chunk)
        return body

    def start(self) -> None:
        self.post({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": INITIALIZE_PARAMS})
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call_message(self, text: str) -> dict[str, object]:
        self._next += 1
        params = {"name": "echo", "arguments": {"text": text}}
        return {"jsonrpc": "2.0", "id": self._next, "method": "tools/call", "params": params}

    def call(self, text: str) -> int:
        """One decided call; its round trip in ns."""
        message = self.call_message(text)
        started = time.perf_counter_ns()
        body = self.post(message)
        elapsed = time.perf_counter_ns() - started
        check_echo(body)
        return elapsed

    def close(self) -> None:
        self.sock.close()


def check_echo(body: bytes) -> None:
    if b'"isError":false' not in body:
        raise BenchError(f"a call was answered with {body[:200]!r}")
