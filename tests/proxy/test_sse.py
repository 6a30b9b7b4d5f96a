"""Event-stream decoding: every line ending, split anywhere, and a size limit."""

from __future__ import annotations

import pytest

from regogate.proxy.relay._framing import Oversize
from regogate.proxy.relay._sse import SseDecoder, SseEvent

STREAM = b': keep-alive\r\nid: 7\r\nevent: message\r\ndata: {"a":\r\ndata: 1}\r\n\r\nretry: 250\nid: 8\ndata: x\n\ndata: y\r\rdata:  z\n\n'
EXPECTED = [
    SseEvent("message", b'{"a":\n1}', "7"),
    SseEvent("message", b"x", "8"),
    SseEvent("message", b"y", "8"),
    SseEvent("message", b" z", "8"),
]


def decode(chunks: list[bytes], **kwargs: int) -> tuple[list[SseEvent], SseDecoder]:
    decoder = SseDecoder(**kwargs)
    events: list[SseEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events, decoder


def test_a_stream_in_one_chunk_gives_every_event() -> None:
    events, decoder = decode([STREAM])
    assert events == EXPECTED
    assert decoder.retry == 250
    assert decoder.last_id == "8"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 13])
def test_a_stream_split_anywhere_gives_the_same_events(size: int) -> None:
    events, _ = decode([STREAM[i : i + size] for i in range(0, len(STREAM), size)])
    assert events == EXPECTED


def test_a_crlf_split_between_chunks_is_one_line_ending() -> None:
    events, _ = decode([b"data: a\r", b"\n", b"\r", b"\ndata: b\n\n"])
    assert events == [SseEvent("message", b"a", None), SseEvent("message", b"b", None)]


def test_an_event_past_the_limit_is_a_marker_with_its_head_and_the_next_one_is_whole() -> None:
    big = b'data: {"jsonrpc":"2.0","id":5,"result":"' + b"x" * 5000 + b'"}\n\n'
    events, _ = decode([big[i : i + 700] for i in range(0, len(big), 700)] + [b"data: ok\n\n"], max_event=1000)
    assert len(events) == 2
    assert isinstance(events[0].data, Oversize)
    assert events[0].data.head.startswith(b'{"jsonrpc":"2.0","id":5')
    assert events[1].data == b"ok"


def test_many_data_lines_past_the_limit_are_one_marker() -> None:
    events, _ = decode([b"data: 0123456789\n" * 50 + b"\n"], max_event=100)
    assert len(events) == 1
    assert isinstance(events[0].data, Oversize)


def test_an_event_without_data_dispatches_nothing_and_an_id_with_nul_is_ignored() -> None:
    events, decoder = decode([b"event: ping\n\nid: a\x00b\ndata: x\n\n"])
    assert events == [SseEvent("message", b"x", None)]
    assert decoder.last_id is None
