"""Start the Streamable HTTP MCP servers the bridge tests talk to, on loopback, on free ports."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.conftest import ROOT, stop_process

SERVERS = ROOT / "tests" / "servers"
EVERYTHING_SERVER = str(SERVERS / "node_modules" / ".bin" / "mcp-server-everything")
START_TIMEOUT = 90.0
"""A cold start of the SDK under a loaded CI machine has taken 20 s; this bounds a broken one."""


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return self.url.rsplit("/", 1)[0]


@contextmanager
def python_http_server(*flags: str) -> Iterator[RunningServer]:
    """tests/servers/http_server.py (our SDK-built server); it picks its own port and says which."""
    process = subprocess.Popen(
        [sys.executable, str(SERVERS / "http_server.py"), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"http_server.py did not start: {line!r}")
        yield RunningServer(f"http://127.0.0.1:{int(line.split()[1])}/mcp", process)
    finally:
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def everything_http_server() -> Iterator[RunningServer]:
    """@modelcontextprotocol/server-everything in its streamableHttp mode."""
    port = free_port()
    process = subprocess.Popen(
        [EVERYTHING_SERVER, "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                httpx.get(url, timeout=1.0)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server-everything did not start") from None
                time.sleep(0.1)
        yield RunningServer(url, process)
    finally:
        stop_process(process)
