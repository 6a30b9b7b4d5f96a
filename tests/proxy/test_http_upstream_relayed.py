"""The HTTP upstream attached to a real relay (as the bridge runs it), against a server that answers badly on purpose.

The server here is a few lines of raw HTTP/1.1 on loopback: no published MCP server sends answers
that are not JSON-RPC, and the cases are exactly those. Every request must get one answer, never a hang.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from regogate.proxy.relay._framing import LineReader, LineWriter
from regogate.proxy.relay._http_target import HttpTarget
from regogate.proxy.relay._http_upstream import HttpUpstream
from regogate.proxy.relay._relay import Relay
from tests.proxy.conftest import STEP, Gate
from tests.proxy.line_client import LineClient

pytestmark = pytest.mark.anyio

Message = dict[str, object]
Answer = Callable[[Message], tuple[str, bytes]]
"""A request's parsed body -> the answer's content type and body."""


def standard(message: Message) -> tuple[str, bytes]:
    method = message.get("method")
    if method == "initialize":
        result: object = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "raw"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
    else:
        result = {"content": [{"type": "text", "text": "ok"}]}
    return "application/json", json.dumps({"jsonrpc": "2.0", "id": message.get("id"), "result": result}).encode()


async def _serve(stream: anyio.abc.ByteStream, answer: Answer) -> None:
    buffer = b""
    async with stream:
        while True:
            while b"\r\n\r\n" not in buffer:
                try:
                    buffer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = 0
            for field in head.split(b"\r\n")[1:]:
                name, _, value = field.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                buffer += await stream.receive()
            body, buffer = buffer[:length], buffer[length:]
            message = json.loads(body) if body else {}
            if "id" not in message:
                await stream.send(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                continue
            kind, data = answer(message)
            head_out = f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {len(data)}\r\n\r\n"
            await stream.send(head_out.encode() + data)


@asynccontextmanager
async def bridged(answer: Answer) -> AsyncIterator[LineClient]:
    async with bridged_upstream(answer) as (client, _):
        yield client


@asynccontextmanager
async def bridged_upstream(answer: Answer) -> AsyncIterator[tuple[LineClient, HttpUpstream]]:
    """A relay (with a gateway that allows everything) bridged to a raw server answering with ``answer``."""
    client_r, client_w = os.pipe()
    back_r, back_w = os.pipe()
    ends = (LineReader(client_r, owned=True), LineWriter(back_w, owned=True))
    client = LineClient(LineWriter(client_w, owned=True), LineReader(back_r, owned=True))
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, lambda stream: _serve(stream, answer))
            async with HttpUpstream.connect(HttpTarget(f"http://127.0.0.1:{port}/mcp", read_timeout=STEP)) as upstream:
                relay = Relay(
                    Gate(),
                    client_in=ends[0],
                    client_out=ends[1],
                    upstream_in=upstream,
                    upstream_out=upstream,
                    on_client_closed=upstream.stop,
                )
                tg.start_soon(relay.run)
                await client.handshake()
                yield client, upstream
                await upstream.stop()
            tg.cancel_scope.cancel()
    finally:
        await listener.aclose()
        for end in (*ends, client.writer, client.reader):
            end.close()


def call(request_id: int) -> Message:
    return {"id": request_id, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}


async def test_an_answer_whose_id_cannot_be_told_apart_gets_an_error_for_the_call_not_a_hang() -> None:
    # Two "id" members: a reader that keeps the last takes it for the call's answer; the relay refuses it as
    # ambiguous and cannot say which request it was for. The call must still get exactly one answer.
    def twice(message: Message) -> tuple[str, bytes]:
        if message.get("method") != "tools/call":
            return standard(message)
        request_id = json.dumps(message["id"])
        return (
            "application/json",
            f'{{"jsonrpc":"2.0","result":{{"content":[]}},"id":{request_id},"id":{request_id}}}'.encode(),
        )

    async with bridged(twice) as client:
        answer, after = await client.ask_then_ping(call(7), 8)
    assert answer["id"] == 7 and "error" in answer, answer
    assert after["id"] == 8 and "result" in after, after  # and no second answer for 7 came before it


@pytest.mark.parametrize(
    "body",
    [b"not json", b"", b'[{"jsonrpc":"2.0","id":9,"result":{}}]', b'{"jsonrpc":"2.0","id":9,"result":NaN}'],
    ids=["text", "empty", "batch", "nan"],
)
async def test_an_unusable_json_answer_gets_one_error_for_its_call(body: bytes) -> None:
    def bad(message: Message) -> tuple[str, bytes]:
        return standard(message) if message.get("method") != "tools/call" else ("application/json", body)

    async with bridged(bad) as client:
        answer, after = await client.ask_then_ping(call(9), 10)
    assert answer["id"] == 9 and "error" in answer, answer
    assert after["id"] == 10 and "result" in after, after


async def test_calls_in_flight_together_each_get_their_own_answer() -> None:
    async with bridged(standard) as client:
        for request_id in range(20, 28):
            await client.send(call(request_id))
        answers = [await client.receive() for _ in range(8)]
    assert sorted(int(str(a["id"])) for a in answers) == list(range(20, 28))
    assert all("result" in a for a in answers), answers


async def test_the_session_ends_promptly_while_a_streamed_message_waits_on_a_client_that_reads_nothing() -> None:
    # A streamed message is handed to the client shielded from the call's cancel (no half line), but the
    # session's own end must still cut it short: here the client never reads, so the hand-on cannot finish.
    note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x" * 150_000}}

    def streamed(message: Message) -> tuple[str, bytes]:
        if message.get("method") != "tools/call":
            return standard(message)
        events = [json.dumps(note).encode()] * 10 + [standard(message)[1]]
        return "text/event-stream", b"".join(b"event: message\ndata: " + data + b"\n\n" for data in events)

    with anyio.fail_after(STEP):
        async with bridged_upstream(streamed) as (client, upstream):
            await client.send(call(30))
            while not upstream._out._handing:
                await anyio.sleep(0.01)
            await anyio.sleep(0.5)  # the pipes fill (nobody reads them); the hand-on then waits for good
            assert upstream._out._handing
