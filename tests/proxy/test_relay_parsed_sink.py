"""The relay with a ``ParsedSink`` upstream (the HTTP bridge's shape): parsed once, carried, handed straight back."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from regogate.proxy.relay._framing import LineReader, LineWriter, Oversize
from regogate.proxy.relay._pipes import Deliver, ParsedSink
from regogate.proxy.relay._relay import Relay
from tests.proxy.conftest import STEP, Gate
from tests.proxy.line_client import LineClient

pytestmark = pytest.mark.anyio

Message = dict[str, object]


class Sink:
    """An upstream that answers each request itself, through the relay's handler, from inside ``send_parsed``."""

    def __init__(self) -> None:
        self.deliver: Deliver | None = None
        self.sent: list[tuple[Message, bool]] = []
        self.handed_back: list[object] = []
        self.answers: dict[str, bytes] = {}
        self.over = anyio.Event()

    def attach(self, deliver: Deliver) -> None:
        self.deliver = deliver

    async def send(self, line: bytes) -> None:  # the relay's own lines (a tools/list it asks for itself)
        await self.send_parsed(line, json.loads(line), carry=False)

    async def send_parsed(self, line: bytes, message: Message, *, carry: bool) -> None:
        assert json.loads(line) == message  # the parsed form is the line's
        self.sent.append((message, carry))
        method = message.get("method")
        if "id" not in message or not isinstance(method, str):
            return
        if method == "initialize":
            result: object = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {}}
        elif method == "tools/list":
            result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
        else:
            result = {"content": [{"type": "text", "text": "done"}]}
        answer = self.answers.get(
            method, json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
        )
        assert self.deliver is not None
        self.handed_back.append(await self.deliver(answer))

    async def receive(self) -> bytes | Oversize | None:
        await self.over.wait()
        return None

    async def aclose(self) -> None:
        pass


@asynccontextmanager
async def relayed(sink: Sink, gate: Gate) -> AsyncIterator[tuple[LineClient, Relay]]:
    client_r, client_w = os.pipe()
    back_r, back_w = os.pipe()
    client_in, client_out = LineReader(client_r, owned=True), LineWriter(back_w, owned=True)
    client = LineClient(LineWriter(client_w, owned=True), LineReader(back_r, owned=True))
    relay = Relay(
        gate,
        client_in=client_in,
        client_out=client_out,
        upstream_in=sink,
        upstream_out=sink,
        on_client_closed=sink.over.set,  # type: ignore[arg-type]
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(relay.run)
            yield client, relay
            sink.over.set()
    finally:
        for end in (client_in, client_out, client.writer, client.reader):
            end.close()


async def test_a_call_is_sent_parsed_carried_in_its_own_task_and_its_answer_handed_straight_back() -> None:
    assert isinstance(Sink(), ParsedSink)
    sink, gate = Sink(), Gate()
    async with relayed(sink, gate) as (client, _):
        await client.handshake()
        await client.send({"id": "c1", "method": "tools/call", "params": {"name": "echo", "arguments": {"n": 1}}})
        answer = await client.receive()
        await client.send({"id": "p1", "method": "ping"})
        assert (await client.receive())["id"] == "p1"
        assert await gate.wait_settled(1) == [("d1", True)]
    assert answer == {"jsonrpc": "2.0", "id": "c1", "result": {"content": [{"type": "text", "text": "done"}]}}
    carried = {str(m.get("method")): carry for m, carry in sink.sent}
    assert carried["tools/call"] is True  # the call's own task waits for its answer
    assert carried["ping"] is False and carried["initialize"] is False  # the client's reader never waits on the server
    assert {"jsonrpc": "2.0", "id": "c1", "result": {"content": [{"type": "text", "text": "done"}]}} in sink.handed_back


async def test_an_unreadable_answer_handed_back_reads_as_none_and_the_client_gets_an_error_for_its_id() -> None:
    sink, gate = Sink(), Gate()
    sink.answers["tools/call"] = b'{"jsonrpc":"2.0","id":"c2","result":{},"result":{"content":[]}}'  # duplicate key
    async with relayed(sink, gate) as (client, _):
        await client.handshake()
        await client.send({"id": "c2", "method": "tools/call", "params": {"name": "echo", "arguments": {}}})
        answer = await client.receive()
    assert answer["id"] == "c2" and "error" in answer, answer
    assert sink.handed_back[-1] is None  # the upstream learns it was no answer, and answers with an error itself


async def test_a_message_handed_back_once_the_session_is_over_goes_nowhere() -> None:
    sink, gate = Sink(), Gate()
    async with relayed(sink, gate) as (client, _):
        await client.handshake()
    assert sink.deliver is not None
    late = json.dumps({"jsonrpc": "2.0", "method": "notifications/message", "params": {}}).encode()
    with anyio.fail_after(STEP):
        assert await sink.deliver(late) is None
