"""A ``tools/call`` POSTed to the gateway is decided and written upstream in the POST's own task (a carried
message), never at the cost of order, of a server that stopped reading, or of a session that ended.

The relay runs between a real ``ClientLink`` and a real pipe to a "server" the test plays: it reads the
server's stdin end and writes the server's answers. The gate is the transport tests' ``Gate``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest

from regogate.proxy.relay import Decoded, LineReader, LineWriter, Relay, decode, encode
from regogate.proxy.transports._client_link import ClientLink, Exchange
from tests.proxy.conftest import STEP, Gate

pytestmark = pytest.mark.anyio

Message = dict[str, object]


def parsed(message: Message) -> Decoded:
    decoded = decode(json.dumps(message).encode())
    assert isinstance(decoded, Decoded)
    return decoded


def call(request_id: int, tool: str = "echo") -> Decoded:
    return parsed({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool}})


@dataclass
class Server:
    """The test's end of the server's pipes, and the session's client link."""

    link: ClientLink
    stdin: int
    """The read end of the server's stdin (non-blocking), as the server would read it."""
    stdout: LineWriter
    relay_end: int
    """The relay's end of the server's stdin, for the test to fill."""
    relay_done: anyio.Event
    unread: bytes = b""

    def pending(self) -> bytes:
        """What the relay has written to the server's stdin and nobody has read yet."""
        with contextlib.suppress(BlockingIOError):
            self.unread += os.read(self.stdin, 1 << 20)
        taken, self.unread = self.unread, b""
        return taken

    async def lines(self, count: int) -> list[bytes]:
        """The next ``count`` lines the server reads."""
        with anyio.fail_after(STEP):
            while self.unread.count(b"\n") < count:
                await anyio.wait_readable(self.stdin)
                self.unread += os.read(self.stdin, 1 << 20)
        *found, self.unread = self.unread.split(b"\n", count)
        return found

    async def messages(self, count: int) -> list[Message]:
        return [json.loads(line) for line in await self.lines(count)]

    async def answer(self, exchange: Exchange | None) -> Message:
        assert exchange is not None
        with anyio.fail_after(STEP):
            item = await exchange.receive()
        assert item is not None
        line, final = item
        assert final
        self.link.close_exchange(exchange)
        answer: Message = json.loads(line)
        return answer

    async def post(self, message: Decoded, request_id: int | None = None) -> Exchange | None:
        exchange = self.link.open_exchange(request_id, None, sse=False) if request_id is not None else None
        with anyio.fail_after(STEP):
            assert await self.link.submit(message)
        return exchange


@asynccontextmanager
async def relayed(gate: Gate) -> AsyncIterator[Server]:
    """A relay in front of the test's server, past its handshake and with its tools known."""
    link = ClientLink()
    server_in, relay_out = os.pipe()
    relay_in, server_out = os.pipe()
    os.set_blocking(server_in, False)
    to_server = LineWriter(relay_out, owned=True)
    server = Server(link, server_in, LineWriter(server_out, owned=True), relay_out, anyio.Event())
    relay = Relay(
        gate,
        client_in=link,
        client_out=link,
        upstream_in=LineReader(relay_in, owned=True),
        upstream_out=to_server,
        on_client_closed=to_server.aclose,
    )

    async def run() -> None:
        try:
            await relay.run()
        finally:
            link.finish()  # as the gateway's session does
            server.relay_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        initialize = await server.post(parsed({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}), 0)
        assert [m["method"] for m in await server.messages(1)] == ["initialize"]
        result = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "s"}}
        await server.stdout.send(encode({"jsonrpc": "2.0", "id": 0, "result": result}))
        await server.answer(initialize)
        await server.post(parsed({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        listing = await server.post(parsed({"jsonrpc": "2.0", "id": -1, "method": "tools/list"}), -1)
        assert [m["method"] for m in await server.messages(2)] == ["notifications/initialized", "tools/list"]
        tools = [{"name": name, "inputSchema": {"type": "object"}} for name in ("echo", "slow")]
        await server.stdout.send(encode({"jsonrpc": "2.0", "id": -1, "result": {"tools": tools}}))
        await server.answer(listing)  # the relay knows the tools: no call waits for a listing
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()
            server.stdout.close()
            os.close(server_in)
            link.finish()


async def test_a_call_is_on_the_servers_pipe_when_its_post_hands_it_over() -> None:
    async with relayed(Gate()) as server:
        await server.post(call(1), 1)
        assert json.loads(server.pending())["id"] == 1  # decided and written in the POST's task: no queue


async def test_a_call_never_overtakes_a_message_posted_before_it() -> None:
    async with relayed(Gate()) as server:
        ping = parsed({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        await server.post(ping, 2)  # queued for the relay, not dealt with yet when the call comes
        await server.post(call(3), 3)
        assert [m["id"] for m in await server.messages(2)] == [2, 3]


async def test_a_server_that_stopped_reading_holds_no_post_and_gets_the_call_once_it_reads() -> None:
    async with relayed(Gate()) as server:
        filler = b"x" * 1000 + b"\n"
        fillers = 0
        with contextlib.suppress(BlockingIOError):
            while True:  # the server is busy elsewhere: its stdin pipe fills up, to the last byte
                os.write(server.relay_end, filler)
                fillers += 1
        blanks = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(server.relay_end, b"\n")
                blanks += 1
        await server.post(call(4), 4)  # returns, although the call cannot be written yet
        *first, line = await server.lines(fillers + blanks + 1)
        assert first == [filler[:-1]] * fillers + [b""] * blanks
        assert json.loads(line)["id"] == 4


async def test_a_call_decided_after_its_session_ended_goes_nowhere_and_releases_its_reservation() -> None:
    gate = Gate(slow={"slow"})
    async with relayed(gate) as server:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.post, call(5, "slow"), 5)
            with anyio.fail_after(STEP):
                await gate.deciding.wait()
            server.stdout.close()  # the server exits: the relay ends while the call is being decided
            with anyio.fail_after(STEP):
                await server.relay_done.wait()
            gate.release.set()
        assert await gate.wait_settled(1) == [("d1", False)]
        assert server.pending() == b""  # never written to the server
