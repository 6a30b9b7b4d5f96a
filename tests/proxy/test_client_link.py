"""The HTTP session's client side: parses handed to the relay as they are, lines routed by what the relay says."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
import pytest

from regogate.proxy.relay import Decoded, RoutedSink, decode, encode, error_line
from regogate.proxy.transports import _client_link as client_link
from regogate.proxy.transports._client_link import EXCHANGE_BUFFER, ClientLink, Exchange

pytestmark = pytest.mark.anyio


def progress(token: object) -> tuple[dict[str, object], bytes]:
    message: dict[str, object] = {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": token, "progress": 1},
    }
    return message, encode(message)


class Link(ClientLink):
    """A ClientLink that closes every exchange it opened when the test ends."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[Exchange] = []

    def open_exchange(self, request_id: str | int, token: object, *, sse: bool) -> Exchange | None:
        exchange = super().open_exchange(request_id, token, sse=sse)
        if exchange is not None:
            self.opened.append(exchange)
        return exchange


@pytest.fixture
def link() -> Iterator[Link]:
    link = Link()
    yield link
    link.finish()
    for exchange in link.opened:
        exchange.end()
        exchange.close()


def waiting(exchange: Exchange) -> bool:
    try:
        exchange.receive_nowait()
    except anyio.WouldBlock:
        return True
    return False


async def test_an_answer_goes_to_the_exchange_of_the_id_the_relay_names_with_its_type(link: Link) -> None:
    assert isinstance(link, RoutedSink)
    as_int = link.open_exchange(1, None, sse=False)
    as_str = link.open_exchange("1", None, sse=False)
    assert as_int is not None and as_str is not None
    line = error_line("1", -1, "for the string")
    await link.send_answer("1", line)
    assert as_str.receive_nowait() == (line, True) and as_str.answered
    assert waiting(as_int) and link.busy
    await link.send_answer(1, b'{"jsonrpc":"2.0","id":1,"result":{}}')
    assert as_int.receive_nowait() == (b'{"jsonrpc":"2.0","id":1,"result":{}}', True)
    assert not link.busy


@pytest.mark.parametrize("odd", [True, 1.0, None, [1], 2**53 + 1])
async def test_an_answer_to_an_id_that_only_looks_like_a_waiting_one_is_dropped(link: Link, odd: object) -> None:
    exchange = link.open_exchange(1, None, sse=False)
    big = link.open_exchange(2**53 - 1, None, sse=False)
    assert exchange is not None and big is not None
    await link.send_answer(odd, encode({"jsonrpc": "2.0", "id": odd, "result": {}}))
    assert waiting(exchange) and waiting(big) and link.busy


async def test_an_answer_comes_once_a_second_one_for_the_same_id_is_dropped(link: Link) -> None:
    exchange = link.open_exchange("x", None, sse=False)
    assert exchange is not None
    await link.send_answer("x", b"first")
    await link.send_answer("x", b"second")
    assert exchange.receive_nowait() == (b"first", True)
    with pytest.raises(anyio.EndOfStream):
        exchange.receive_nowait()


async def test_progress_follows_its_token_with_the_tokens_type(link: Link) -> None:
    by_int = link.open_exchange("a", 5, sse=True)
    by_str = link.open_exchange("b", "5", sse=True)
    assert by_int is not None and by_str is not None
    message, line = progress("5")
    await link.send_message(message, line)
    assert by_str.receive_nowait() == (line, False) and waiting(by_int)
    message, line = progress(5)
    await link.send_message(message, line)
    assert by_int.receive_nowait() == (line, False) and waiting(by_str)


async def test_a_server_message_waits_for_the_get_stream_when_no_exchange_streams(link: Link) -> None:
    plain = link.open_exchange(1, None, sse=False)
    assert plain is not None
    message: dict[str, object] = {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "info", "data": "hi"},
    }
    await link.send_message(message, encode(message))
    assert waiting(plain)
    stream = link.listen()
    assert stream is not None
    assert json.loads(stream.receive_nowait()) == message
    link.unlisten(stream)


async def test_a_line_written_without_a_route_is_routed_by_what_it_holds(link: Link) -> None:
    exchange = link.open_exchange("ask", "t", sse=True)
    assert exchange is not None
    _, line = progress("t")
    await link.send(line)
    assert exchange.receive_nowait() == (line, False)
    await link.send(error_line("ask", -1, "no"))
    assert exchange.receive_nowait() == (error_line("ask", -1, "no"), True)


async def test_a_submitted_parse_reaches_the_relay_as_it_is(link: Link) -> None:
    decoded = decode(b'{"jsonrpc":"2.0", "id":1,"method":"ping"}')
    assert isinstance(decoded, Decoded)
    async with anyio.create_task_group() as tg:
        received: list[Decoded | None] = []

        async def relay_side() -> None:
            received.append(await link.receive())
            received.append(await link.receive())

        tg.start_soon(relay_side)
        with anyio.fail_after(5):
            assert await link.submit(decoded)
        link.end_input()
    assert received[0] is decoded and received[1] is None
    link.finish()
    assert not await link.submit(decoded)


def lone_exchange(link: Link, sse: bool = True) -> Exchange:
    exchange = link.open_exchange("e", None, sse=sse)
    assert exchange is not None
    return exchange


async def test_a_full_exchange_holds_its_sender_until_the_reader_takes_one_and_keeps_the_order(link: Link) -> None:
    exchange = lone_exchange(link)
    for n in range(EXCHANGE_BUFFER):
        exchange.send_nowait((b"%d" % n, False))
    with pytest.raises(anyio.WouldBlock):
        exchange.send_nowait((b"late", False))
    sent = anyio.Event()

    async def sender() -> None:
        await exchange.send((b"late", True))
        sent.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        await anyio.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert exchange.receive_nowait() == (b"0", False)
        with anyio.fail_after(5):
            await sent.wait()
    got = [exchange.receive_nowait()[0] for _ in range(EXCHANGE_BUFFER)]
    assert got == [b"%d" % n for n in range(1, EXCHANGE_BUFFER)] + [b"late"]


async def test_a_reader_that_leaves_releases_a_waiting_sender_and_drops_the_queue(link: Link) -> None:
    exchange = lone_exchange(link)
    for n in range(EXCHANGE_BUFFER):
        exchange.send_nowait((b"%d" % n, False))
    outcome: list[str] = []

    async def sender() -> None:
        try:
            await exchange.send((b"late", False))
        except anyio.BrokenResourceError:
            outcome.append("broken")

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        await anyio.wait_all_tasks_blocked()
        exchange.close()
    assert outcome == ["broken"]
    with pytest.raises(anyio.ClosedResourceError):
        exchange.receive_nowait()


async def test_an_ended_exchange_gives_what_was_queued_then_its_end(link: Link) -> None:
    exchange = lone_exchange(link)
    exchange.send_nowait((b"progress", False))
    exchange.send_nowait((b"answer", True))
    exchange.end()
    with pytest.raises(anyio.ClosedResourceError):
        exchange.send_nowait((b"after the end", False))
    with anyio.fail_after(5):
        assert await exchange.receive() == (b"progress", False)
        assert await exchange.receive() == (b"answer", True)
        with pytest.raises(anyio.EndOfStream):
            await exchange.receive()


async def test_a_waiting_reader_wakes_for_an_item_or_the_end_and_a_timed_out_wait_loses_nothing(link: Link) -> None:
    exchange = lone_exchange(link)
    with anyio.move_on_after(0.05) as scope:
        await exchange.receive()
    assert scope.cancelled_caught
    assert await exchange.receive(0.05) is None  # its own timeout: nothing yet, nothing lost
    exchange.send_nowait((b"after the timeout", False))  # the stale waits' futures are gone: harmless
    with anyio.fail_after(5):
        assert await exchange.receive() == (b"after the timeout", False)
    outcome: list[object] = []

    async def reader() -> None:
        try:
            outcome.append(await exchange.receive())
            await exchange.receive()
        except anyio.EndOfStream:
            outcome.append("end")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            exchange.send_nowait((b"woken", False))
            await anyio.wait_all_tasks_blocked()
            exchange.end()
    assert outcome == [(b"woken", False), "end"]


async def test_a_client_that_stops_reading_loses_its_exchange_not_the_session(
    link: Link, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_link, "ROUTE_TIMEOUT", 0.1)
    stuck = lone_exchange(link)
    for n in range(EXCHANGE_BUFFER + 1):
        message, line = progress(n)
        other = link.open_exchange(f"t{n}", None, sse=False)  # answers for others still flow
        assert other is not None
        await link.send_message(message, line)  # the only streaming exchange takes them
        await link.send_answer(f"t{n}", b"answer")
        assert other.receive_nowait() == (b"answer", True)
    assert not link.busy  # the stuck one was dropped after ROUTE_TIMEOUT
    with pytest.raises(anyio.ClosedResourceError):
        stuck.receive_nowait()
