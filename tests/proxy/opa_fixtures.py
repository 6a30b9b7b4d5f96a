"""Helpers for tests that need a real OPA, a tiny bundle or a settable clock."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc

from regogate.core import DecisionError
from regogate.proxy.policy import OpaClient, find_opa
from tests.conftest import free_tcp_port

#: OPA needs about 50 ms to listen here; the rest is slack for a loaded CI machine.
OPA_START_TIMEOUT = 10.0
#: Readiness probes are cheap; probing often keeps test start-up short.
OPA_POLL_INTERVAL = 0.01

ALLOW_BUNDLE = {
    "t/t.rego": """package t

default allow := false

allow if input.x == 1

decision := {"allow": allow, "reasons": [{"rule": "x", "message": "x must be 1"} | not allow]}

bad if to_number(input.s) > 0
""",
}


class FakeClock:
    """A clock that says whatever the test set."""

    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.value = now

    def now(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


class FaultTransport:
    """An ``OpaTransport`` that gives every request one fault a real OPA cannot make on demand.

    It answers ``status`` and ``body``, or raises ``error``, or (``stall``) never answers.
    """

    def __init__(
        self, status: int = 200, body: bytes = b"", *, error: DecisionError | None = None, stall: bool = False
    ) -> None:
        self.status, self.body, self.error, self.stall = status, body, error, stall
        self.requests: list[tuple[str, str, bytes]] = []
        self.closed = False

    async def request(
        self, method: str, target: str, body: bytes = b"", *, deadline: float = math.inf
    ) -> tuple[int, bytes]:
        self.requests.append((method, target, body))
        if self.stall:
            with anyio.fail_at(deadline):
                await anyio.sleep_forever()
        if self.error is not None:
            raise self.error
        return self.status, self.body

    async def aclose(self) -> None:
        self.closed = True


def write_bundle(directory: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` (relative path to text) under ``directory``; return it."""
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


@dataclass
class RunningOpa:
    """A raw ``opa run --server`` the test started, and the URL to reach it."""

    url: str
    process: anyio.abc.Process

    def kill(self) -> None:
        with suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)


@asynccontextmanager
async def running_opa(bundle: Path, *, transport: str) -> AsyncIterator[RunningOpa]:
    """Run OPA with ``bundle`` over ``transport`` ("unix" or "tcp") until the block ends."""
    socket_dir = tempfile.mkdtemp(prefix="regogate-test-")
    if transport == "unix":
        addr = url = f"unix://{socket_dir}/opa.sock"
    else:
        port = free_tcp_port()
        addr, url = f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    argv = [find_opa(None), "run", "--server", "--addr", addr, "--log-level", "error", "--skip-version-check"]
    process = await anyio.open_process(
        [*argv, "--bundle", str(bundle)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with OpaClient(url) as probe:
            with anyio.fail_after(OPA_START_TIMEOUT):
                while not await probe.health(bundles=True):
                    assert process.returncode is None, "OPA exited before it was ready"
                    await anyio.sleep(OPA_POLL_INTERVAL)
        yield RunningOpa(url=url, process=process)
    finally:
        with anyio.CancelScope(shield=True):
            with suppress(ProcessLookupError):
                process.kill()
            await process.aclose()
            with suppress(OSError):
                os.unlink(f"{socket_dir}/opa.sock")
            os.rmdir(socket_dir)
