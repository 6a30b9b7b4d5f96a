"""Fixtures for the relay and upstream tests: a relay on pipes, and the relay as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import pytest
from mcp.client.stdio import StdioServerParameters

from regogate.proxy.relay._framing import MAX_LINE_BYTES, LineReader, LineWriter, Oversize
from regogate.proxy.relay._gateway import CallContext, Gateway, Verdict
from regogate.proxy.relay._relay import DEFAULT_DENY_PREFIX, Relay
from regogate.proxy.relay._upstream import Upstream

ROOT = Path(__file__).resolve().parents[2]
RELAY_MAIN = str(Path(__file__).with_name("relay_main.py"))
EVERYTHING = str(ROOT / "tests/servers/node_modules/.bin/mcp-server-everything")
TIME_SERVER = str(ROOT / ".venv-servers/bin/mcp-server-time")
EOF_IGNORER = str(ROOT / "tests/servers/eof_ignorer.py")
STEP = 5.0
"""Bound on any single wait in these tests."""
START_TIMEOUT = 30.0
"""Bound on a wait that includes a real server's start-up, which takes seconds on a loaded CI machine."""

Message = dict[str, object]


def _encode(message: Message | bytes) -> bytes:
    return message if isinstance(message, bytes) else json.dumps(message).encode()


async def _receive(reader: LineReader, timeout: float = STEP) -> Message:
    with anyio.fail_after(timeout):
        line = await reader.receive()
    assert line is not None, "end of file"
    assert not isinstance(line, Oversize)
    message = json.loads(line)
    assert isinstance(message, dict)
    return message


@dataclass
class Pipes:
    """A relay running in-process; the test plays both the client and the upstream."""

    client_send: LineWriter
    client_receive: LineReader
    upstream_send: LineWriter
    upstream_receive: LineReader
    client_closed: anyio.Event = field(default_factory=anyio.Event)

    async def from_client(self, message: Message | bytes) -> None:
        await self.client_send.send(_encode(message))

    async def from_upstream(self, message: Message | bytes) -> None:
        await self.upstream_send.send(_encode(message))

    async def to_client(self) -> Message:
        return await _receive(self.client_receive)

    async def to_upstream(self) -> Message:
        return await _receive(self.upstream_receive)

    async def raw_to_client(self) -> bytes:
        with anyio.fail_after(STEP):
            line = await self.client_receive.receive()
        assert isinstance(line, bytes)
        return line

    async def handshake(self, version: str = "2025-11-25", capabilities: Message | None = None) -> None:
        """Pass initialize and notifications/initialized through, as a real pair would."""
        await self.from_client(
            {
                "jsonrpc": "2.0",
                "id": "init",
                "method": "initialize",
                "params": {
                    "protocolVersion": version,
                    "capabilities": capabilities or {},
                    "clientInfo": {"name": "pytest", "version": "1"},
                },
            }
        )
        assert (await self.to_upstream())["method"] == "initialize"
        await self.from_upstream(
            {
                "jsonrpc": "2.0",
                "id": "init",
                "result": {
                    "protocolVersion": version,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "fake", "version": "1"},
                },
            }
        )
        assert (await self.to_client())["id"] == "init"
        await self.from_client({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert (await self.to_upstream())["method"] == "notifications/initialized"

    async def list_tools(self, *names: str) -> Message:
        """A client tools/list answered by the fake upstream; returns what the client got."""
        await self.from_client({"jsonrpc": "2.0", "id": "list", "method": "tools/list"})
        assert (await self.to_upstream())["method"] == "tools/list"
        tools = [{"name": n, "inputSchema": {"type": "object"}} for n in names]
        await self.from_upstream({"jsonrpc": "2.0", "id": "list", "result": {"tools": tools}})
        return await self.to_client()


@pytest.fixture
def relay_on_pipes() -> Callable[[Gateway], AbstractAsyncContextManager[Pipes]]:
    """Run a ``Relay`` between two pairs of OS pipes for the duration of a block."""

    @asynccontextmanager
    async def run(
        gateway: Gateway, *, max_line: int = MAX_LINE_BYTES, deny_prefix: str = DEFAULT_DENY_PREFIX
    ) -> AsyncIterator[Pipes]:
        client_r, client_w = os.pipe()
        back_r, back_w = os.pipe()
        up_r, up_w = os.pipe()
        down_r, down_w = os.pipe()
        pipes = Pipes(
            LineWriter(client_w, owned=True),
            LineReader(back_r, owned=True),
            LineWriter(down_w, owned=True),
            LineReader(up_r, owned=True),
        )
        relay_side = (
            LineReader(client_r, owned=True, max_line=max_line),
            LineWriter(back_w, owned=True),
            LineReader(down_r, owned=True),
            LineWriter(up_w, owned=True),
        )

        async def client_closed() -> None:
            pipes.client_closed.set()
            await pipes.upstream_send.aclose()  # the fake upstream exits on EOF

        relay = Relay(
            gateway,
            client_in=relay_side[0],
            client_out=relay_side[1],
            upstream_in=relay_side[2],
            upstream_out=relay_side[3],
            on_client_closed=client_closed,
            deny_prefix=deny_prefix,
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(relay.run)
                yield pipes
                tg.cancel_scope.cancel()
        finally:
            for end in (
                *relay_side,
                pipes.client_send,
                pipes.client_receive,
                pipes.upstream_send,
                pipes.upstream_receive,
            ):
                end.close()

    return run


@dataclass
class Gate:
    """A gateway for transport tests: deny or hide by name, hold decisions for ``slow`` tools."""

    deny: set[str] = field(default_factory=set)
    hide: set[str] = field(default_factory=set)
    slow: set[str] = field(default_factory=set)
    release: anyio.Event = field(default_factory=anyio.Event)
    deciding: anyio.Event = field(default_factory=anyio.Event)
    calls: list[CallContext] = field(default_factory=list)
    settled: list[tuple[str, bool]] = field(default_factory=list)
    settled_event: anyio.Event = field(default_factory=anyio.Event)

    async def check_call(self, call: CallContext) -> Verdict:
        self.calls.append(call)
        decision_id = f"d{len(self.calls)}"
        if call.tool_name in self.slow:
            self.deciding.set()
            await self.release.wait()
        if call.tool_name in self.deny:
            return Verdict(False, f"{call.tool_name} is off limits", "deny_by_name", decision_id)
        return Verdict(True, "", None, decision_id, ticket=call.tool_name)

    async def settle(self, verdict: Verdict, *, succeeded: bool) -> None:
        self.settled.append((verdict.decision_id, succeeded))
        self.settled_event.set()

    async def wait_settled(self, count: int) -> list[tuple[str, bool]]:
        with anyio.fail_after(STEP):
            while len(self.settled) < count:
                self.settled_event = anyio.Event()
                await self.settled_event.wait()
        return self.settled

    async def hidden_tools(self, tools: list[dict[str, object]], *, last_page: bool = True) -> set[str]:
        return {str(t["name"]) for t in tools} & self.hide


def relay_params(*upstream: str, gateway: str = "") -> StdioServerParameters:
    """The relay launcher as an SDK stdio server, with the full environment passed on."""
    env = {**os.environ, "REGOGATE_TEST_GATEWAY": gateway}
    return StdioServerParameters(command=sys.executable, args=[RELAY_MAIN, *upstream], env=env)


@pytest.fixture
async def raw_relay(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Upstream]]:
    """Start the relay launcher as a child whose stdin/stdout the test drives line by line."""
    started: list[Upstream] = []

    def start(*upstream: str, gateway: str = "") -> Upstream:
        monkeypatch.setenv("REGOGATE_TEST_GATEWAY", gateway)
        relay = Upstream.spawn([sys.executable, RELAY_MAIN, *upstream])
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.signal_group(signal.SIGKILL)
        await relay.wait(STEP)
        relay.close()


async def receive_json(reader: LineReader, request_id: object, timeout: float = STEP) -> Message:
    """The response to ``request_id`` from a subprocess, skipping notifications, within ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while "id" not in (message := await _receive(reader, timeout)) or "method" in message:
            pass
    assert message["id"] == request_id, message
    return message
