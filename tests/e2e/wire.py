"""Drive the real `regogate` command with raw bytes, and read what it answers, message by message."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import anyio
import anyio.abc

from tests.conftest import ROOT, find_opa_binary
from tests.e2e.harness import REGOGATE

RECORDER = ROOT / "tests" / "servers" / "wire_recorder.py"
STEP = 30.0
"""Bound on one wait for an answer; real servers under a loaded CI machine take seconds to start."""

POLL = 0.02
"""Re-check interval for conditions on files the recorder writes (it has no other way to signal)."""

Message = dict[str, object]


class RawSession:
    """One regogate process: bytes in, parsed messages out."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self.received: list[Message] = []
        self.unparseable: list[bytes] = []
        self._buffer = b""

    async def send(self, data: bytes) -> None:
        """Write raw bytes (add the newline yourself)."""
        assert self.process.stdin is not None
        await self.process.stdin.send(data)

    async def send_json(self, message: Message) -> None:
        await self.send(json.dumps(message).encode() + b"\n")

    async def _read_more(self) -> None:
        assert self.process.stdout is not None
        chunk = await self.process.stdout.receive()
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                self.unparseable.append(line)
                continue
            assert isinstance(message, dict), line
            self.received.append(message)

    async def until(self, done: Callable[[list[Message]], bool], timeout: float = STEP) -> None:
        """Read until ``done`` holds; it may also look at files, so it is re-checked every ``POLL`` seconds."""
        with anyio.fail_after(timeout):
            while not done(self.received):
                with anyio.move_on_after(POLL):
                    await self._read_more()

    def answers(self, request_id: object) -> list[Message]:
        """Responses (not requests or notifications) carrying ``request_id``, of the same JSON type."""
        return [m for m in self.received if "method" not in m and _same(m.get("id"), request_id)]

    async def answer(self, request_id: object) -> Message:
        await self.until(lambda _: bool(self.answers(request_id)))
        return self.answers(request_id)[0]

    async def handshake(self) -> None:
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "wire", "version": "1"}}
        await self.send_json({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": params})
        await self.answer("init")
        await self.send_json({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def close(self) -> int:
        """Close stdin and read until regogate exits; its exit status."""
        assert self.process.stdin is not None
        await self.process.stdin.aclose()
        with anyio.fail_after(STEP), suppress(anyio.EndOfStream, anyio.ClosedResourceError):
            while True:
                await self._read_more()
        with anyio.fail_after(STEP):
            return await self.process.wait()


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


@asynccontextmanager
async def raw_regogate(policy: Path, upstream: Sequence[str], stderr: Path, *flags: str) -> AsyncIterator[RawSession]:
    """`regogate -c POLICY FLAGS -- UPSTREAM` as a child whose stdin and stdout the test drives."""
    env = {**os.environ, "REGOGATE_OPA": find_opa_binary()}
    with stderr.open("ab") as err:
        process = await anyio.open_process(
            [REGOGATE, "-c", str(policy), *flags, "--", *upstream], env=env, stderr=err, start_new_session=True
        )
    try:
        yield RawSession(process)
    finally:
        if process.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        with anyio.CancelScope(shield=True), anyio.move_on_after(STEP):
            await process.wait()
        await process.aclose()


def recorder(log: Path, *server: str) -> list[str]:
    """The recorder as an upstream: teeing ``server`` if given, else serving itself."""
    return [sys.executable, str(RECORDER), str(log), *(["--", *server] if server else [])]
