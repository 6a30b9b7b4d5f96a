"""A test server of ours that records exactly which bytes reached it (no published server does that).

Two modes, both appending raw bytes to files next to ``LOG`` so a test can check what
a server's reader really saw:

``wire_recorder.py LOG -- COMMAND...``
    Run COMMAND (a real MCP server) and copy bytes both ways unchanged, appending
    what it received to ``LOG.in`` and what it sent to ``LOG.out``.

``wire_recorder.py LOG``
    Be a tiny MCP server whose reader splits its input at ``\\n`` only (as the
    TypeScript SDK does). It appends what it received to ``LOG.in`` and each tool it
    runs to ``LOG.calls`` (one name a line), and offers the tools ``safe``,
    ``danger``, ``slow`` (answers after ``SLOW_SECONDS``) and ``hidden``; a ``tools/list``
    with the cursor ``slow`` is answered after ``SLOW_SECONDS`` too. Written for
    regogate's tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

TOOLS = [
    {"name": "safe", "inputSchema": {"type": "object"}},
    {"name": "danger", "inputSchema": {"type": "object"}},
    {"name": "slow", "inputSchema": {"type": "object"}},
    {"name": "hidden", "inputSchema": {"type": "object"}},
]
SLOW_SECONDS = 0.2
"""How long the ``slow`` tool takes, so a cancellation can overtake its answer."""


def _pump(source: IO[bytes], sink: IO[bytes], log: Path) -> None:
    with log.open("ab") as record:
        while chunk := os.read(source.fileno(), 65536):
            record.write(chunk)
            record.flush()
            sink.write(chunk)
            sink.flush()
    sink.close()


def tee(log: Path, command: list[str]) -> int:
    """Relay stdin/stdout to ``command`` byte for byte, recording both directions."""
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    up = threading.Thread(target=_pump, args=(sys.stdin.buffer, child.stdin, log.with_suffix(".in")), daemon=True)
    up.start()
    _pump(child.stdout, sys.stdout.buffer, log.with_suffix(".out"))
    return child.wait()


def _answer(message: dict[str, object], calls: Path) -> dict[str, object] | None:
    method, request_id = message.get("method"), message.get("id")
    if "id" not in message or not isinstance(method, str):
        return None
    if method == "initialize":
        params = message.get("params")
        version = params.get("protocolVersion") if isinstance(params, dict) else None
        result: dict[str, object] = {
            "protocolVersion": version or "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "wire-recorder", "version": "1"},
        }
    elif method == "tools/list":
        params = message.get("params")
        if isinstance(params, dict) and params.get("cursor") == "slow":  # keeps a listing in flight for a test
            time.sleep(SLOW_SECONDS)
        result = {"tools": TOOLS}
    elif method == "tools/call":
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        with calls.open("a", encoding="utf-8") as record:
            record.write(f"{name}\n")
        if name == "slow":
            time.sleep(SLOW_SECONDS)
        result = {"content": [{"type": "text", "text": f"ran {name}"}]}
    elif method == "ping":
        result = {}
    else:
        return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "Method not found"}}
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def serve(log: Path) -> int:
    """Answer MCP requests read as ``\\n``-separated lines."""
    received = log.with_suffix(".in").open("ab")
    calls = log.with_suffix(".calls")
    calls.touch()
    buffer = b""
    while chunk := os.read(0, 65536):
        received.write(chunk)
        received.flush()
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and (answer := _answer(message, calls)) is not None:
                sys.stdout.buffer.write(json.dumps(answer).encode() + b"\n")
                sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[2] == "--":
        sys.exit(tee(Path(sys.argv[1]), sys.argv[3:]))
    sys.exit(serve(Path(sys.argv[1])))
