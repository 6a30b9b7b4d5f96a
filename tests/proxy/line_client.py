"""A JSON-RPC client on a relay's client pipes, for the tests that run a relay in-process."""

from __future__ import annotations

import json

import anyio

from regogate.proxy.relay._framing import LineReader, LineWriter
from tests.proxy.conftest import STEP

Message = dict[str, object]


class LineClient:
    """Sends messages as lines and reads the relay's answers, each wait bounded."""

    def __init__(self, send: LineWriter, receive: LineReader) -> None:
        self.writer, self.reader = send, receive

    async def send(self, message: Message) -> None:
        await self.writer.send(json.dumps({"jsonrpc": "2.0", **message}).encode())

    async def receive(self) -> Message:
        with anyio.fail_after(STEP):
            line = await self.reader.receive()
        assert isinstance(line, bytes)
        message = json.loads(line)
        assert isinstance(message, dict)
        return message

    async def handshake(self) -> None:
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        await self.send({"id": 0, "method": "initialize", "params": params})
        assert "result" in await self.receive()
        await self.send({"method": "notifications/initialized"})

    async def ask_then_ping(self, message: Message, ping_id: int) -> tuple[Message, Message]:
        """The answer to ``message``, then to a ping sent after it: no second answer came between."""
        await self.send(message)
        answer = await self.receive()
        await self.send({"id": ping_id, "method": "ping"})
        return answer, await self.receive()
