"""The relay's entry points for transports that parse lines themselves: parses handed over, answers routed.

A source may hand the relay what ``decode`` returned instead of the bytes (the relay then forwards that
parse's canonical ``wire``, never parses the line again); a client side that is a ``RoutedSink`` is told
which request each answer is for and which server message each line is, and never gets a bare line for
either.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from regogate.proxy.relay import Decoded, Oversize, Relay, decode
from regogate.proxy.relay._framing import MAX_LINE_BYTES
from tests.proxy.conftest import STEP, Gate

pytestmark = pytest.mark.anyio

Message = dict[str, object]
Item = bytes | Oversize | Decoded


def parsed(message: Message | bytes) -> Decoded:
    line = message if isinstance(message, bytes) else json.dumps(message).encode()
    decoded = decode(line)
    assert isinstance(decoded, Decoded)
    return decoded


class Source:
    """Lines or parses, as a transport hands them over."""

    def __init__(self) -> None:
        self.sender: MemoryObjectSendStream[Item]
        self._items: MemoryObjectReceiveStream[Item]
        self.sender, self._items = anyio.create_memory_object_stream[Item](16)

    async def receive(self) -> Item | None:
        try:
            return await self._items.receive()
        except anyio.EndOfStream:
            return None

    def close(self) -> None:
        self.sender.close()
        self._items.close()


class Sink:
    """Records every line as ``(how, what it was told, line)``; ``how`` is send, answer or message."""

    def __init__(self) -> None:
        self._sender: MemoryObjectSendStream[tuple[str, object, bytes]]
        self.out: MemoryObjectReceiveStream[tuple[str, object, bytes]]
        self._sender, self.out = anyio.create_memory_object_stream[tuple[str, object, bytes]](64)

    async def send(self, line: bytes) -> None:
        await self._sender.send(("send", None, line))

    async def aclose(self) -> None:
        self._sender.close()

    def close(self) -> None:
        self._sender.close()
        self.out.close()

    async def next(self) -> tuple[str, object, bytes]:
        with anyio.fail_after(STEP):
            return await self.out.receive()


class RoutingSink(Sink):
    async def send_answer(self, request_id: object, line: bytes) -> None:
        await self._sender.send(("answer", request_id, line))

    async def send_message(self, message: dict[str, object], line: bytes) -> None:
        await self._sender.send(("message", message, line))


@dataclass
class Ends:
    client: Source
    to_client: Sink
    upstream: Source
    to_upstream: Sink
    tg: anyio.abc.TaskGroup = field(repr=False)

    @property
    def answer(self) -> str:
        return "answer" if isinstance(self.to_client, RoutingSink) else "send"

    async def upstream_line(self) -> bytes:
        how, _, line = await self.to_upstream.next()
        assert how == "send"
        return line

    async def handshake(self) -> None:
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        await self.client.sender.send(parsed({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": init}))
        assert json.loads(await self.upstream_line())["method"] == "initialize"
        result = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "f"}}
        await self.upstream.sender.send(parsed({"jsonrpc": "2.0", "id": "init", "result": result}))
        assert (await self.to_client.next())[0] == self.answer
        await self.client.sender.send(parsed({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        assert json.loads(await self.upstream_line())["method"] == "notifications/initialized"
        await self.client.sender.send(parsed({"jsonrpc": "2.0", "id": "list", "method": "tools/list"}))
        assert json.loads(await self.upstream_line())["method"] == "tools/list"
        tools = [{"name": name, "inputSchema": {"type": "object"}} for name in ("echo", "secret")]
        await self.upstream.sender.send(parsed({"jsonrpc": "2.0", "id": "list", "result": {"tools": tools}}))
        assert (await self.to_client.next())[0] == self.answer


@asynccontextmanager
async def relay(gate: Gate, *, routing: bool = True) -> AsyncIterator[Ends]:
    async def closed() -> None:
        upstream.sender.close()

    client, upstream = Source(), Source()
    to_client = RoutingSink() if routing else Sink()
    to_upstream = Sink()
    the_relay = Relay(
        gate,
        client_in=client,
        client_out=to_client,
        upstream_in=upstream,
        upstream_out=to_upstream,
        on_client_closed=closed,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(the_relay.run)
            yield Ends(client, to_client, upstream, to_upstream, tg)
            client.sender.close()
    finally:
        for end in (client, upstream, to_client, to_upstream):
            end.close()


def call(request_id: object, name: str = "echo", arguments: object = None) -> Message:
    params = {"name": name, "arguments": {"text": "hi"} if arguments is None else arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def test_a_handed_over_parse_is_decided_and_its_canonical_wire_goes_upstream() -> None:
    gate = Gate()
    async with relay(gate) as ends:
        await ends.handshake()
        # Spacing, a float written long and a CRLF: the parse's wire is what goes, not these bytes.
        raw = b'{"jsonrpc":"2.0", "id":7, "method":"tools/call","params":{"name":"echo","arguments":{"n":2.50}}}\r'
        handed = parsed(raw)
        await ends.client.sender.send(handed)
        assert await ends.upstream_line() == handed.wire
        assert (
            handed.wire
            == b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"n":2.5}}}'
        )
    assert gate.calls[0].arguments == {"n": 2.5}


async def test_bytes_and_parses_mix_on_one_source_and_each_is_read_once() -> None:
    gate = Gate(deny={"secret"})
    async with relay(gate) as ends:
        await ends.handshake()
        await ends.client.sender.send(json.dumps(call(1, "secret")).encode())  # bytes: the relay parses them
        await ends.client.sender.send(parsed(call(2)))
        how, request_id, line = await ends.to_client.next()
        assert (how, request_id) == ("answer", 1) and json.loads(line)["result"]["isError"] is True
        assert json.loads(await ends.upstream_line())["id"] == 2
    assert [c.request_id for c in gate.calls] == [1, 2]


async def test_an_upstream_parse_is_routed_as_the_answer_to_its_request_with_the_ids_type_kept() -> None:
    gate = Gate()
    async with relay(gate) as ends:
        await ends.handshake()
        # 1 and "1" are two requests; each answer is routed to its own, by the id's type too.
        await ends.client.sender.send(parsed(call(1)))
        await ends.client.sender.send(parsed(call("1")))
        sent = {json.dumps(json.loads(await ends.upstream_line())["id"]) for _ in range(2)}
        assert sent == {"1", '"1"'}
        for request_id in ("1", 1):
            await ends.upstream.sender.send(parsed({"jsonrpc": "2.0", "id": request_id, "result": {"content": []}}))
            how, routed, line = await ends.to_client.next()
            assert how == "answer" and type(routed) is type(request_id) and routed == request_id
            assert json.loads(line)["id"] == request_id
        assert await gate.wait_settled(2) == [("d2", True), ("d1", True)]


async def test_a_server_message_is_routed_as_a_message_with_its_parse() -> None:
    async with relay(Gate()) as ends:
        await ends.handshake()
        progress: Message = {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": 5, "progress": 1},
        }
        await ends.upstream.sender.send(parsed(progress))
        how, message, line = await ends.to_client.next()
        assert (how, message, json.loads(line)) == ("message", progress, progress)
        # A server request carries an id too, but it is a message, not an answer.
        sampling: Message = {"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage", "params": {}}
        await ends.upstream.sender.send(json.dumps(sampling).encode())
        assert (await ends.to_client.next())[:2] == ("message", sampling)


@pytest.mark.parametrize(
    ("line", "answers"),
    [
        (b'{"jsonrpc":"2.0","id":3,"id":4,"method":"tools/call","params":{"name":"echo"}}', None),
        (b'{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"echo","arguments":{"a":"\xff"}}}', None),
        (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', [1]),
        (b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","a":1,"a":2}}', 5),
        (b'[{"jsonrpc":"2.0","id":6,"method":"ping"}]', None),
    ],
)
async def test_a_refused_client_line_is_answered_as_an_answer_to_the_id_it_carries(
    line: bytes, answers: object
) -> None:
    async with relay(Gate()) as ends:
        await ends.handshake()
        await ends.client.sender.send(line)
        how, request_id, sent = await ends.to_client.next()
        assert how == "answer" and request_id == answers and json.loads(sent)["id"] == answers


async def test_a_duplicate_id_in_flight_is_refused_as_an_answer_to_that_id() -> None:
    gate = Gate(slow={"echo"})
    async with relay(gate) as ends:
        await ends.handshake()
        await ends.client.sender.send(parsed(call(8)))
        with anyio.fail_after(STEP):
            await gate.deciding.wait()
        await ends.client.sender.send(parsed(call(8)))
        how, request_id, line = await ends.to_client.next()
        assert (how, request_id) == ("answer", 8) and "error" in json.loads(line)
        gate.release.set()
        assert json.loads(await ends.upstream_line())["id"] == 8


async def test_an_oversize_line_is_answered_to_the_id_sniffed_from_its_head() -> None:
    async with relay(Gate()) as ends:
        await ends.handshake()
        await ends.client.sender.send(Oversize(b'{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{'))
        how, request_id, line = await ends.to_client.next()
        assert (how, request_id) == ("answer", "big")
        assert str(MAX_LINE_BYTES) in json.loads(line)["error"]["message"]


async def test_an_unusable_upstream_answer_is_routed_to_its_request() -> None:
    async with relay(Gate()) as ends:
        await ends.handshake()
        await ends.client.sender.send(parsed(call(11)))
        assert json.loads(await ends.upstream_line())["id"] == 11
        await ends.upstream.sender.send(b'{"jsonrpc":"2.0","id":11,"result":{"content":[]},"result":{}}')
        how, request_id, line = await ends.to_client.next()
        assert (how, request_id) == ("answer", 11) and "error" in json.loads(line)


async def test_a_plain_sink_gets_every_line_through_send() -> None:
    gate = Gate(deny={"secret"})
    async with relay(gate, routing=False) as ends:
        await ends.handshake()
        await ends.client.sender.send(parsed(call(1, "secret")))
        how, _, line = await ends.to_client.next()
        assert how == "send" and json.loads(line)["id"] == 1
