"""A minimal MCP server over stdio whose tools take any arguments and always succeed.

Written for regogate's behaviour table: the published servers validate their arguments, so a call
carrying `"5"` where a number is expected would fail upstream (and a failed call rolls a reservation
back), hiding what the policy decided. Each tool named on the command line answers `ok <name>`.
Hand-written JSON-RPC (no SDK), so nothing but the policy stands between a call and its answer.
"""

from __future__ import annotations

import json
import sys

PROTOCOL_VERSION = "2025-06-18"


def answer(request_id: object, result: object) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}) + "\n")
    sys.stdout.flush()


def main() -> None:
    names = sys.argv[1:]
    tools = [{"name": n, "description": f"accepts anything ({n})", "inputSchema": {"type": "object"}} for n in names]
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict) or "id" not in message or "method" not in message:
            continue
        method, request_id = message["method"], message["id"]
        if method == "initialize":
            requested = message.get("params", {}).get("protocolVersion", PROTOCOL_VERSION)
            answer(
                request_id,
                {
                    "protocolVersion": requested,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "any-args", "version": "1.0.0"},
                },
            )
        elif method == "tools/list":
            answer(request_id, {"tools": tools})
        elif method == "tools/call":
            name = message.get("params", {}).get("name")
            answer(request_id, {"content": [{"type": "text", "text": f"ok {name}"}], "isError": False})
        elif method == "ping":
            answer(request_id, {})
        else:
            error = {"code": -32601, "message": f"method not found: {method}"}
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
