"""The benchmark's Streamable HTTP upstream (ours): bench/echo_server.py's answers over HTTP/1.1 keep-alive.

Standard library only, one thread per connection, JSON answers (``application/json``) written in
one send each (head and body together, as a server that buffers its output does), a session id from
``initialize``, 202 for notifications, 405 for the GET stream. It binds 127.0.0.1 on a free
port and prints ``PORT <n>``; it runs until killed.
"""

from __future__ import annotations

import json
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.echo_server import PROTOCOL_VERSION, tool_entry, tool_names

SESSION = uuid.uuid4().hex


def answer(message: dict[str, object]) -> dict[str, object]:
    """The JSON-RPC answer to one request, as bench/echo_server.py gives it."""
    method, params = message.get("method"), message.get("params") or {}
    assert isinstance(params, dict)
    result: object
    if method == "tools/call":
        result = {"content": [{"type": "text", "text": json.dumps(params.get("arguments") or {})}], "isError": False}
    elif method == "tools/list":
        result = {"tools": [tool_entry(name) for name in tool_names(10)]}
    elif method == "ping":
        result = {}
    elif method == "initialize":
        result = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "regogate-bench-http-echo", "version": "1.0.0"},
        }
    else:
        return {"jsonrpc": "2.0", "id": message.get("id"), "error": {"code": -32601, "message": "method not found"}}
    return {"jsonrpc": "2.0", "id": message.get("id"), "result": result}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1  # buffered: an answer's head and body leave in one send (flushed after each request)

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        if "id" not in message or "method" not in message:
            self._reply(202, b"")
            return
        body = json.dumps(answer(message), separators=(",", ":")).encode()
        self._reply(200, body, {"content-type": "application/json", "mcp-session-id": SESSION})

    def do_GET(self) -> None:
        self._reply(405, b"")

    def do_DELETE(self) -> None:
        self._reply(200, b"")

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
