"""A stubborn MCP-ish server for orphan tests: ignores stdin EOF, SIGTERM, SIGINT and SIGHUP.

Usage: ``eof_ignorer.py PIDFILE``. Writes its pid to PIDFILE, answers ``initialize`` and
every other request with an empty result, and after stdin ends keeps running until SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def main() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    with open(sys.argv[1], "w", encoding="utf-8") as pidfile:
        pidfile.write(str(os.getpid()))
    for line in sys.stdin.buffer:
        message = json.loads(line)
        if "id" not in message or "method" not in message:
            continue
        result: dict[str, object] = {}
        if message["method"] == "initialize":
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "eof-ignorer", "version": "0"},
            }
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}) + "\n")
        sys.stdout.flush()
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
