"""The fastest local MCP server we could write: the benchmark's upstream (ours, written for regogate's bench).

It speaks raw JSON lines on stdin/stdout with blocking reads and no SDK, so nearly all of a
measured round trip is the path under test, not the server. It answers ``initialize``,
``tools/list`` (``--tools N`` tools, all on one page), ``tools/call`` (echoes the arguments as
text), ``ping``, ``resources/read`` and ``bench/set_tools`` (``{"count": N}`` changes how many tools
the next ``tools/list`` returns, so one session can measure several list sizes). Notifications are
read and ignored; any other request gets ``-32601``. It exits on stdin EOF.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import BinaryIO

#: Tools every listing carries first: the ones the benchmark policy allows, denies, limits and hides.
FIXED_TOOLS = ("echo", "denied", "limited", "hidden-tool")
PROTOCOL_VERSION = "2025-11-25"


def tool_entry(name: str) -> dict[str, object]:
    """A tools/list entry of realistic size (~300 bytes): a description, a schema and annotations."""
    return {
        "name": name,
        "description": f"Benchmark tool {name}: echoes its arguments back as text.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "what to echo"}},
            "required": ["text"],
        },
        "annotations": {"readOnlyHint": True, "destructiveHint": False},
    }


def tool_names(count: int) -> list[str]:
    """The names a listing of ``count`` tools carries (never fewer than the fixed tools)."""
    padding = [f"tool-{index:04d}" for index in range(max(0, count - len(FIXED_TOOLS)))]
    return [*FIXED_TOOLS, *padding]


def _encode(message: object) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _listing(count: int) -> dict[str, object]:
    return {"tools": [tool_entry(name) for name in tool_names(count)]}


def serve(stdin: BinaryIO, stdout: BinaryIO, tools: int) -> None:
    """Answer requests until stdin ends."""
    listing = _listing(tools)
    for line in stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        request_id = message.get("id")
        if request_id is None:
            continue  # a notification
        method = message.get("method")
        params = message.get("params") or {}
        result: object
        if method == "tools/call":
            text = json.dumps(params.get("arguments") or {}, separators=(",", ":"))
            result = {"content": [{"type": "text", "text": text}], "isError": False}
        elif method == "ping":
            result = {}
        elif method == "resources/read":
            uri = params.get("uri", "")
            result = {"contents": [{"uri": uri, "mimeType": "text/plain", "text": "benchmark resource"}]}
        elif method == "tools/list":
            result = listing
        elif method == "bench/set_tools":
            listing = _listing(int(params["count"]))
            result = {"count": len(listing["tools"])}  # type: ignore[arg-type]
        elif method == "initialize":
            result = {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {"tools": {}, "resources": {}},
                "serverInfo": {"name": "regogate-bench-echo", "version": "1.0.0"},
            }
        else:
            reply = {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "method not found"}}
            stdout.write(_encode(reply))
            stdout.flush()
            continue
        stdout.write(_encode({"jsonrpc": "2.0", "id": request_id, "result": result}))
        stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tools", type=int, default=10, help="tools in a tools/list answer (default 10)")
    args = parser.parse_args(argv)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(sys.stdin.buffer, sys.stdout.buffer, args.tools)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
