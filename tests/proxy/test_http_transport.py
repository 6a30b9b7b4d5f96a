"""The bridge's HTTP/1.1 transport: one connection reused, a request never sent twice, stray bytes never read as an answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx
import pytest

from regogate.proxy.relay._http_transport import H11Transport

pytestmark = pytest.mark.anyio

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
WAIT = 10.0


class RawServer:
    """A loopback server that answers each request with ``reply(n)`` (n counts requests) and counts connections."""

    def __init__(self, reply: Callable[[int], bytes | None]) -> None:
        self.reply = reply
        self.connections = 0
        self.requests = 0

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        self.connections += 1
        async with stream:
            buffer = b""
            while True:
                try:
                    buffer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                while b"\r\n\r\n" in buffer:
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":")[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length")
                        ),
                        0,
                    )
                    if len(rest) < length:
                        break
                    buffer = rest[length:]
                    self.requests += 1
                    answer = self.reply(self.requests)
                    if answer is None:
                        return  # hang up without answering
                    await stream.send(answer)


@asynccontextmanager
async def serving(reply: Callable[[int], bytes | None]) -> AsyncIterator[tuple[RawServer, str]]:
    server = RawServer(reply)
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server._handle)
        yield server, f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}/mcp"
        tg.cancel_scope.cancel()


async def post(client: httpx.AsyncClient, url: str) -> httpx.Response:
    with anyio.fail_after(WAIT):
        return await client.post(url, content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}')


async def test_requests_share_one_keep_alive_connection() -> None:
    async with (
        serving(lambda _: OK) as (server, url),
        httpx.AsyncClient(transport=H11Transport(max_connections=4, max_keepalive=2)) as client,
    ):
        for _ in range(3):
            assert (await post(client, url)).json() == {}
    assert (server.connections, server.requests) == (1, 3)


async def test_a_connection_lost_after_the_request_left_fails_it_and_never_resends() -> None:
    async with (
        serving(lambda n: OK if n == 1 else None) as (server, url),
        httpx.AsyncClient(transport=H11Transport(max_connections=4, max_keepalive=2)) as client,
    ):
        await post(client, url)
        with pytest.raises(httpx.RemoteProtocolError):
            await post(client, url)
    assert server.requests == 2  # the second went out once; no retry on a fresh connection


async def test_bytes_after_an_answer_are_never_read_as_the_next_answer() -> None:
    smuggled = OK + b'HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{"x":666}'
    async with (
        serving(lambda n: smuggled if n == 1 else OK) as (server, url),
        httpx.AsyncClient(transport=H11Transport(max_connections=4, max_keepalive=2)) as client,
    ):
        assert (await post(client, url)).json() == {}
        assert (await post(client, url)).json() == {}
    assert server.connections == 2  # the connection holding stray bytes was dropped
