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

    def __init__(self, reply: Callable[[int], bytes | None], *, close_after: bool = False) -> None:
        self.reply = reply
        self.close_after = close_after
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
                    if self.close_after:
                        return  # the close ends the answer (one with no length and no chunks)


@asynccontextmanager
async def serving(
    reply: Callable[[int], bytes | None], *, close_after: bool = False
) -> AsyncIterator[tuple[RawServer, str]]:
    server = RawServer(reply, close_after=close_after)
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


async def test_an_informational_answer_before_the_answer_is_skipped_and_the_connection_kept() -> None:
    async with (
        serving(lambda _: b"HTTP/1.1 100 Continue\r\n\r\n" + OK) as (server, url),
        httpx.AsyncClient(transport=H11Transport(max_connections=4, max_keepalive=2)) as client,
    ):
        for _ in range(2):
            answer = await post(client, url)
            assert (answer.status_code, answer.json()) == (200, {})
    assert server.connections == 1


async def test_an_answer_ended_by_the_close_is_read_whole_and_its_connection_not_reused() -> None:
    unframed = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"whole": true}'
    async with (
        serving(lambda _: unframed, close_after=True) as (server, url),
        httpx.AsyncClient(transport=H11Transport(max_connections=4, max_keepalive=2)) as client,
    ):
        for _ in range(2):
            assert (await post(client, url)).json() == {"whole": True}
    assert server.connections == 2


@pytest.mark.parametrize(
    "reply",
    [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{}"],
    ids=["not-http", "cut-short"],
)
async def test_an_answer_that_is_not_http_or_is_cut_short_is_a_protocol_error(reply: bytes) -> None:
    async with (
        serving(lambda _: reply, close_after=True) as (_, url),
        httpx.AsyncClient(transport=H11Transport(max_connections=4, max_keepalive=2)) as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await post(client, url)


async def test_a_header_that_would_split_the_request_never_leaves() -> None:
    async with (
        serving(lambda _: OK) as (server, url),
        httpx.AsyncClient(transport=H11Transport(max_connections=4, max_keepalive=2)) as client,
    ):
        with anyio.fail_after(WAIT), pytest.raises(httpx.LocalProtocolError):
            await client.post(url, content=b"{}", headers={"Mcp-Param-X": "a\r\nX-Injected: 1"})
    assert server.requests == 0
