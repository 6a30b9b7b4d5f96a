"""Start the real `regogate serve` on a free loopback port and talk to it with the real MCP SDK client."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
from mcp.client.session import ClientSession, ElicitationFnT
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import find_opa_binary, stop_process
from tests.e2e.harness import EVERYTHING_SERVER, REGOGATE

START_TIMEOUT = 60.0
"""OPA and the policy conversion under a loaded CI machine; bounds a broken start."""
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
"""What a Streamable HTTP client sends with every POST."""
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen[bytes]
    stderr: list[str]

    @property
    def base(self) -> str:
        return self.url.removesuffix("/mcp")

    def read_stderr(self, timeout: float = 5.0) -> str:
        """What regogate printed since start, reading until it exits or `timeout` passes."""
        assert self.process.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stderr], [], [], 0.1)
            if ready:
                chunk = os.read(self.process.stderr.fileno(), 65536)
                if not chunk:
                    break
                self.stderr.append(chunk.decode(errors="replace"))
            elif self.process.poll() is not None:
                break
        return "".join(self.stderr)


@contextmanager
def serve(
    policy: Path, *flags: str, upstream: tuple[str, ...] = (EVERYTHING_SERVER,), env: dict[str, str] | None = None
) -> Iterator[Gateway]:
    """`regogate serve -c POLICY --listen 127.0.0.1:0 FLAGS -- UPSTREAM` (no `--` when `upstream` is empty),
    stopped with SIGTERM afterwards."""
    environment = {**os.environ, "REGOGATE_OPA": find_opa_binary(), **(env or {})}
    command = ["--", *upstream] if upstream else []
    argv = [REGOGATE, "serve", "-c", str(policy), "--listen", "127.0.0.1:0", *flags, *command]
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        buffer = b""
        while url is None:
            ready, _, _ = select.select([process.stderr], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(process.stderr.fileno(), 65536) if ready else b""
            if not chunk:
                raise RuntimeError(f"regogate serve did not start: {buffer.decode(errors='replace')}")
            buffer += chunk
            for line in buffer.decode(errors="replace").splitlines():
                if line.startswith("regogate: serving MCP on "):
                    url = line.rsplit(" ", 1)[1]
        seen.append(buffer.decode(errors="replace"))
        yield Gateway(url, process, seen)
    finally:
        stop_process(process, signal.SIGTERM, timeout=20.0)
        process.stderr.close()


@asynccontextmanager
async def mcp_session(
    url: str, headers: dict[str, str] | None = None, *, elicitation_callback: ElicitationFnT | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized SDK session over Streamable HTTP (whose user answers forms if given a callback)."""
    client = httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(30.0, read=60.0))
    async with (
        client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write, elicitation_callback=elicitation_callback) as session,
    ):
        await session.initialize()
        yield session
