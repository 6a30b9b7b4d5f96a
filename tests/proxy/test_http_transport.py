"""The bridge's HTTP/1.1 transport: one connection reused, a request never sent twice, stray bytes never read as an answer,
and a request that would not be one well-formed request never leaves."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx
import pytest

from regogate.proxy.relay import _http_wire
from regogate.proxy.relay._http_transport import HttpTransport, request_head

pytestmark = pytest.mark.anyio

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
WAIT = 10.0
POST_HEADERS = [("content-type", "application/json")]
TIMEOUTS = {"connect": WAIT, "write": WAIT, "read": WAIT}


class RawServer:
    """A loopback server that answers each request with ``reply(n)`` (n counts requests) and counts connections."""

    def __init__(self, reply: Callable[[int], bytes | None], *, close_after: bool = False) -> None:
        self.reply = reply
        self.close_after = close_after
        self.connections = 0
        self.requests = 0
        self.heads: list[bytes] = []
        self.hung_up = anyio.Event()
        """Set when the server has closed a connection."""

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        self.connections += 1
        try:
            await self._serve(stream)
        finally:
            self.hung_up.set()

    async def _serve(self, stream: anyio.abc.SocketStream) -> None:
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
                    self.heads.append(head)
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


PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'


def transport(url: str) -> HttpTransport:
    return HttpTransport(url, max_connections=4, max_keepalive=2)


async def post(client: HttpTransport, headers: list[tuple[str, str]] | None = None) -> tuple[int, object]:
    """POST a ping; the answer's status and its parsed body (the connection handed back)."""
    with anyio.fail_after(WAIT):
        reply = await client.send("POST", headers or POST_HEADERS, PING, **TIMEOUTS)
        try:
            return reply.status_code, json.loads(await reply.aread())
        finally:
            await reply.aclose()


async def test_requests_share_one_keep_alive_connection() -> None:
    async with serving(lambda _: OK) as (server, url):
        client = transport(url)
        for _ in range(3):
            assert await post(client) == (200, {})
        await client.aclose()
    assert (server.connections, server.requests) == (1, 3)


async def test_a_connection_lost_after_the_request_left_fails_it_and_never_resends() -> None:
    async with serving(lambda n: OK if n == 1 else None) as (server, url):
        client = transport(url)
        await post(client)
        with pytest.raises(httpx.RemoteProtocolError):
            await post(client)
        await client.aclose()
    assert server.requests == 2  # the second went out once; no retry on a fresh connection


async def test_bytes_after_an_answer_are_never_read_as_the_next_answer() -> None:
    smuggled = OK + b'HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{"x":666}'
    async with serving(lambda n: smuggled if n == 1 else OK) as (server, url):
        client = transport(url)
        assert await post(client) == (200, {})
        assert await post(client) == (200, {})
        await client.aclose()
    assert server.connections == 2  # the connection holding stray bytes was dropped


async def test_an_informational_answer_before_the_answer_is_skipped_and_the_connection_kept() -> None:
    async with serving(lambda _: b"HTTP/1.1 100 Continue\r\n\r\n" + OK) as (server, url):
        client = transport(url)
        for _ in range(2):
            assert await post(client) == (200, {})
        await client.aclose()
    assert server.connections == 1


async def test_an_answer_ended_by_the_close_is_read_whole_and_its_connection_not_reused() -> None:
    unframed = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"whole": true}'
    async with serving(lambda _: unframed, close_after=True) as (server, url):
        client = transport(url)
        for _ in range(2):
            assert await post(client) == (200, {"whole": True})
        await client.aclose()
    assert server.connections == 2


@pytest.mark.parametrize(
    "reply",
    [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{}"],
    ids=["not-http", "cut-short"],
)
async def test_an_answer_that_is_not_http_or_is_cut_short_is_a_protocol_error(reply: bytes) -> None:
    async with serving(lambda _: reply, close_after=True) as (_, url):
        client = transport(url)
        with pytest.raises(httpx.RemoteProtocolError):
            await post(client)
        await client.aclose()


@pytest.mark.parametrize(
    "header",
    [
        ("Mcp-Param-X", "a\r\nX-Injected: 1"),
        ("Mcp-Param-X", "a\nX-Injected: 1"),
        ("Mcp-Param-X", "a\rX-Injected: 1"),
        ("Mcp-Param-X", "nul\0byte"),
        ("Mcp-Param-X", "bell\x07"),
        ("Mcp-Param-X", "caf\u00e9"),
        ("X-Injected: 1\r\nMcp-Param-X", "a"),
        ("Bad Name", "a"),
        ("", "a"),
    ],
    ids=["crlf", "lf", "cr", "nul", "control", "non-ascii", "name-crlf", "name-space", "name-empty"],
)
async def test_a_header_that_would_split_the_request_never_leaves(header: tuple[str, str]) -> None:
    async with serving(lambda _: OK) as (server, url):
        client = transport(url)
        with pytest.raises(httpx.LocalProtocolError):
            await post(client, [*POST_HEADERS, header])
        assert await post(client) == (200, {})  # the refusal cost no connection and no slot
        await client.aclose()
    assert (server.requests, server.connections) == (1, 1)


async def test_each_request_carries_its_own_header_values_whatever_went_before() -> None:
    # Header blocks are rendered once and remembered; a remembered one must never stand in for other values.
    names = ["a", "b", "a", *(f"n{i}" for i in range(40)), "b"]
    async with serving(lambda _: OK) as (server, url):
        client = transport(url)
        for name in names:
            assert await post(client, [*POST_HEADERS, ("mcp-name", name)]) == (200, {})
        with pytest.raises(httpx.LocalProtocolError):  # a value that would split the request is still refused
            await post(client, [*POST_HEADERS, ("mcp-name", "a\r\nX-Injected: 1")])
        await client.aclose()
    sent = [next(line for line in head.split(b"\r\n") if line.startswith(b"mcp-name:")) for head in server.heads]
    assert sent == [f"mcp-name: {name}".encode() for name in names]


async def test_a_head_that_trickles_in_is_bounded_by_the_read_timeout_in_all() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

    async def trickle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            for byte in head:  # every gap well under the read timeout, the whole far over it
                await stream.send(bytes([byte]))
                await anyio.sleep(0.05)

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, trickle)
        client = transport(f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}/mcp")
        started = anyio.current_time()
        with anyio.fail_after(WAIT), pytest.raises(httpx.ReadTimeout):
            await client.send("POST", POST_HEADERS, PING, connect=WAIT, write=WAIT, read=0.5)
        assert anyio.current_time() - started < 2.0  # the head would take ~3.5 s
        await client.aclose()
        tg.cancel_scope.cancel()


async def test_a_body_that_stops_coming_is_a_read_timeout() -> None:
    stalled = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n{}"
    async with serving(lambda _: stalled) as (_, url):
        client = transport(url)
        with anyio.fail_after(WAIT):
            reply = await client.send("POST", POST_HEADERS, PING, connect=WAIT, write=WAIT, read=0.2)
            with pytest.raises(httpx.ReadTimeout):
                await reply.read_body(1000)
            await reply.aclose()
        await client.aclose()


async def test_a_body_past_the_limit_is_refused_and_the_next_request_is_answered() -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n[1,2,3,4,5] "
    async with serving(lambda n: big if n == 1 else OK) as (server, url):
        client = transport(url)
        with anyio.fail_after(WAIT):
            reply = await client.send("POST", POST_HEADERS, PING, **TIMEOUTS)
            assert await reply.read_body(11) is None
            await reply.aclose()
        assert await post(client) == (200, {})
        await client.aclose()
    assert server.requests == 2


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:1/mcp?x=1%0d%0aX-Injected:%201", "http://127.0.0.1:1/a b"],
    ids=["encoded-crlf-stays-encoded", "space-is-encoded"],
)
def test_a_request_target_is_sent_as_the_url_encodes_it(url: str) -> None:
    client = transport(url)
    head = request_head("POST", client.target, client.host, [], 2)
    first, _, rest = head.partition(b"\r\n")
    assert first.count(b" ") == 2 and first.endswith(b" HTTP/1.1")
    assert rest == b"host: 127.0.0.1:1\r\ncontent-length: 2\r\n\r\n"


def test_a_malformed_request_line_is_refused() -> None:
    for method, target in [("POST", "/a b"), ("POST", "/a\r\nX: 1"), ("PATCH", "/mcp"), ("POST", "")]:
        with pytest.raises(httpx.LocalProtocolError):
            request_head(method, target, "h", [], None)


async def test_headers_of_an_answer_read_in_any_case_and_repeated_ones_joined() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Twice: a\r\nx-twice: b\r\ncontent-length: 2\r\n\r\n{}"
    )
    async with serving(lambda _: answer) as (_, url):
        client = transport(url)
        with anyio.fail_after(WAIT):
            reply = await client.send("POST", POST_HEADERS, PING, **TIMEOUTS)
            assert reply.headers.get("content-type") == "application/json"
            assert reply.headers.get("X-TWICE") == "a, b"
            assert "mcp-session-id" not in reply.headers and reply.headers.get("mcp-session-id") == ""
            await reply.aclose()
        await client.aclose()


async def test_an_answer_closed_unread_gives_its_connection_up_and_the_next_request_a_new_one() -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n"  # the last chunk never comes
    async with serving(lambda n: chunked if n == 1 else OK) as (server, url):
        client = transport(url)
        with anyio.fail_after(WAIT):
            reply = await client.send("POST", POST_HEADERS, PING, **TIMEOUTS)
            await reply.aclose()
        assert await post(client) == (200, {})
        await client.aclose()
    assert (server.connections, server.requests) == (2, 2)


async def test_a_silent_server_is_a_read_timeout() -> None:
    async with serving(lambda _: b"") as (_, url):
        client = transport(url)
        with anyio.fail_after(WAIT), pytest.raises(httpx.ReadTimeout):
            await client.send("POST", POST_HEADERS, PING, connect=WAIT, write=WAIT, read=0.2)
        await client.aclose()


async def test_a_kept_connection_the_server_closed_is_not_sent_on_and_the_request_goes_on_a_new_one() -> None:
    async with serving(lambda _: OK, close_after=True) as (server, url):  # a framed answer, then the close
        client = transport(url)
        assert await post(client) == (200, {})
        with anyio.fail_after(WAIT):
            await server.hung_up.wait()
        assert await post(client) == (200, {})
        await client.aclose()
    assert (server.connections, server.requests) == (2, 2)


async def test_a_server_that_refuses_connections_is_a_connect_error() -> None:
    async with serving(lambda _: OK) as (_, url):
        pass  # the port is free again: nothing listens there
    client = transport(url)
    with anyio.fail_after(WAIT), pytest.raises(httpx.ConnectError):
        await post(client)
    await client.aclose()


async def test_a_silent_first_address_does_not_hold_up_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name whose first address never answers (its listen queue is full, so the SYN is dropped) connects
    through its second address after the stagger, not after the whole connect timeout."""
    try:
        silent = socket.socket(socket.AF_INET6)
        silent.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with silent, socket.socket(socket.AF_INET6) as filler:
        silent.listen(0)
        filler.connect(silent.getsockname())  # the queue is now full: further SYNs go unanswered
        async with serving(lambda _: OK) as (server, url):
            port = httpx.URL(url).port
            assert port is not None
            addresses: list[tuple[object, ...]] = [
                (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", silent.getsockname()),
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port)),
            ]

            async def resolve(*_: object, **__: object) -> list[tuple[object, ...]]:
                return addresses

            monkeypatch.setattr(anyio, "getaddrinfo", resolve)
            client = transport(f"http://server.test:{port}/mcp")
            with anyio.fail_after(WAIT):
                reply = await client.send("POST", POST_HEADERS, PING, connect=60 * WAIT, write=WAIT, read=WAIT)
                assert (reply.status_code, json.loads(await reply.aread())) == (200, {})
                await reply.aclose()
            await client.aclose()
        assert server.connections == 1


async def test_a_connect_cancelled_after_it_won_leaves_no_socket_open(monkeypatch: pytest.MonkeyPatch) -> None:
    # The session ends (its scope is cancelled) just as an address of the name has connected.
    listener = socket.create_server(("127.0.0.1", 0))
    races: list[_http_wire._Race] = []
    attempt = _http_wire._Race.attempt

    async def attempt_then_cancel(race: _http_wire._Race, *args: object) -> None:
        races.append(race)
        await attempt(race, *args)  # type: ignore[arg-type]
        outer.cancel()

    monkeypatch.setattr(_http_wire._Race, "attempt", attempt_then_cancel)
    try:
        with anyio.fail_after(5), anyio.CancelScope() as outer:
            await _http_wire.connect_wire("127.0.0.1", listener.getsockname()[1], None)
        assert outer.cancelled_caught
        (race,) = races
        assert race.winner is not None and race.winner.fileno() == -1  # closed, not left to the collector
    finally:
        listener.close()
