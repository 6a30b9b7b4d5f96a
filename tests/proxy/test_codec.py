"""The codec: strict parsing of every line, and one canonical encoding that every line reader agrees on."""

from __future__ import annotations

import io
import json
import re

import pytest

from regogate.proxy.relay._codec import MAX_DEPTH, BadLine, Decoded, decode, encode, too_deep


def readers(data: bytes) -> dict[str, list[str]]:
    """The non-blank lines each common reader finds in ``data`` (strict UTF-8 throughout)."""
    text = data.decode("utf-8", errors="strict")
    found = {
        "split at \\n": text.split("\n"),
        "split at \\r\\n": [line.removesuffix("\r") for line in text.split("\n")],
        "split at \\r": re.split("\r|\n", text),
        "universal newlines": list(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=None)),
        "str.splitlines": text.splitlines(),
    }
    return {name: [line for line in lines if line.strip()] for name, lines in found.items()}


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"s": "a\rb\nc\u2028d\u2029e\x85f\x00\x1b"}},
        {"jsonrpc": "2.0", "id": "é", "result": {"k\u2028": ["\ud800", 1.5, -0.0, 10**30]}},
    ],
)
def test_an_encoded_message_is_one_line_for_every_reader(message: dict[str, object]) -> None:
    line = encode(message) + b"\n"
    for name, lines in readers(line).items():
        assert len(lines) == 1, name
        assert json.loads(lines[0]) == json.loads(line), name
    decoded = decode(line[:-1])
    assert isinstance(decoded, Decoded) and decoded.wire == line[:-1]
    assert decoded.message == message or "\ud800" in str(message)


def test_the_issue_8_smuggling_line_is_refused() -> None:
    inner = b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"get_current_time","arguments":{"timezone":"UTC"}}}'
    line = b'{"jsonrpc":"2.0","id":3,"method":"ping","params":{"p":\r' + inner + b"\r}}"
    bad = decode(line)
    assert isinstance(bad, BadLine) and "CR" in bad.reason
    assert (bad.request_id, bad.method, bad.has_id) == (3, "ping", True)


def test_crlf_framing_is_accepted() -> None:
    assert decode(b'{"a":1}\r') == Decoded({"a": 1}, b'{"a":1}')


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'\xef\xbb\xbf{"a":1}', "byte order mark"),
        ('{"a":1}'.encode("utf-16-le"), "not JSON"),
        ('{"a":1}'.encode("utf-32"), "not UTF-8"),
        (b'{"a":"\xc3"}', "not UTF-8"),
        (b'{"a":Infinity}', "not JSON"),
        (b'{"a":-1e999}', "not JSON"),
        (b'{"a":"\x01"}', "not JSON"),
    ],
)
def test_lines_readers_disagree_on_are_parse_errors(line: bytes, reason: str) -> None:
    bad = decode(line)
    assert isinstance(bad, BadLine) and bad.code == -32700 and reason in bad.reason


def test_duplicate_keys_anywhere_are_refused_and_a_duplicated_id_is_not_guessed() -> None:
    nested = decode(b'{"id":1,"method":"tools/call","params":{"arguments":{"x":1,"x":2}}}')
    assert isinstance(nested, BadLine) and (nested.request_id, nested.method) == (1, "tools/call")
    twice = decode(b'{"id":1,"id":2,"method":"ping"}')
    assert isinstance(twice, BadLine) and not twice.has_id


def test_depth_is_counted_exactly_and_brackets_in_strings_do_not_count() -> None:
    at_limit = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert not too_deep(at_limit) and isinstance(decode(at_limit), Decoded)
    assert too_deep(b"[" + at_limit + b"]")
    assert not too_deep(b'["' + b"[" * 500 + b'"]')
    mixed = b'{"a":' * 60 + b"[" * 41 + b"]" * 41 + b"}" * 60
    assert too_deep(mixed)
    shallow_and_wide = b"[" + b"[[]]," * 5000 + b"[]]"
    assert not too_deep(shallow_and_wide)


def test_a_line_nested_100000_deep_is_refused_without_recursion() -> None:
    bad = decode(b'{"jsonrpc":"2.0","id":"deep","method":"ping","params":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert isinstance(bad, BadLine) and bad.request_id == "deep" and "nested deeper" in bad.reason


@pytest.mark.parametrize(
    "line",
    [
        b'{"a":{"b":1,"c":{"d":[{"e":1,"e":2}]}}}',
        b'{"k\\\\":1,"k\\\\":2}',
        b'{"q\\"":1,"q\\"":2}',
        b'{"a":"x:y","a":"\\\\\\":"}',
        b'{"\\u0061":1,"a":2}',
    ],
)
def test_duplicate_keys_are_found_however_the_keys_are_written(line: bytes) -> None:
    bad = decode(line)
    assert isinstance(bad, BadLine) and "duplicate" in bad.reason


@pytest.mark.parametrize(
    "line",
    [b'{"a":"k:v","b":"\\\\","c":"\\":\\"","d":[":",{"e":":"}]}', b'{"a\\"b":1,"a\\\\":2,"\\u0061b":3}'],
)
def test_colons_and_escapes_inside_strings_are_not_mistaken_for_duplicates(line: bytes) -> None:
    decoded = decode(line)
    assert isinstance(decoded, Decoded) and decoded.message == json.loads(line)
