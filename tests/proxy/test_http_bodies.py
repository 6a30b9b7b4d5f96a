"""Bounded reads of a Streamable HTTP server's answer bodies: what is passed on and what is refused."""

from __future__ import annotations

import json

import httpx
import pytest

from regogate.proxy.relay._http_bodies import ERROR_BODY_BYTES, one_line, read_bounded, read_error_answer

pytestmark = pytest.mark.anyio


def _response(status: int, body: bytes) -> httpx.Response:
    return httpx.Response(status, content=body)


async def test_a_body_within_the_limit_is_read_whole_and_one_past_it_is_refused() -> None:
    assert await read_bounded(_response(200, b"x" * 10), 10) == b"x" * 10
    assert await read_bounded(_response(200, b"x" * 11), 10) is None


async def test_the_servers_jsonrpc_error_for_this_request_is_passed_on() -> None:
    error = {"jsonrpc": "2.0", "id": 7, "error": {"code": -32602, "message": "bad params"}}
    assert await read_error_answer(_response(400, json.dumps(error).encode()), 7) == error


@pytest.mark.parametrize(
    "body",
    [
        b"<html>Bad Gateway</html>",
        json.dumps({"jsonrpc": "2.0", "id": 8, "error": {"code": -1, "message": "another call's"}}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": 7, "result": {}}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": 7, "error": "not an object"}).encode(),
        json.dumps({"jsonrpc": "2.0", "id": 7, "error": {"code": -1, "message": "x" * ERROR_BODY_BYTES}}).encode(),
    ],
    ids=["not-json", "another-id", "a-result", "malformed-error", "too-large"],
)
async def test_anything_else_in_an_error_body_is_not_an_answer(body: bytes) -> None:
    assert await read_error_answer(_response(502, body), 7) is None


def test_a_server_message_becomes_one_line_whatever_its_layout_and_its_big_integers_survive() -> None:
    big = 10**70  # past 64 bits: a parser reading it as a float would change the number re-encoded here
    pretty = json.dumps({"jsonrpc": "2.0", "id": big, "result": {"text": "a\nb"}}, indent=2).encode()
    line, message = one_line(pretty)
    assert b"\n" not in line and b"\r" not in line
    assert message == json.loads(line) == {"jsonrpc": "2.0", "id": big, "result": {"text": "a\nb"}}
    compact = b'{"jsonrpc":"2.0","id":1,"result":{}}'
    assert one_line(compact) == (compact, {"jsonrpc": "2.0", "id": 1, "result": {}})  # passed on as it came


@pytest.mark.parametrize("data", [b"<html>502</html>", b'{"id": 1', b"", b"\xff\xfe"])
def test_what_is_not_json_is_passed_as_it_came_and_marked_unparsed(data: bytes) -> None:
    assert one_line(data) == (data, None)
