"""The fast codec (orjson where it is exact) against the standard-library reference, on adversarial lines.

Every line must get the same outcome from both: the same refusal (code, reason, envelope) or
the same message and the same forwarded bytes.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from regogate.proxy.relay._codec import BadLine, Decoded, decode, encode
from tests.proxy.codec_reference import reference_decode, reference_encode

EXAMPLES = 250

#: Characters that break readers or parsers: controls, quotes, escapes, line separators, non-BMP.
_TRICKY = '\x00\x01\x1b\x1f\x7f\r\n\t"\\/:{}[],\u2028\u2029\x85\ufeff\ufffe\U0001f600é'
_texts = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(_TRICKY), max_size=12)
_ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 0]),
)
_floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e16, 1e-7, -0.0, 1.5, 2.0**64])
_scalars = st.none() | st.booleans() | _ints | _floats | _texts
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4),
    max_leaves=20,
)

#: Textual edits that each make some reader see something else (or nothing at all).
_EDITS = (
    lambda b: b,
    lambda b: b.replace(b",", b',"dup":1,"dup":2,', 1) if b.startswith(b"{") else b,
    lambda b: b.replace(b":", b":\r", 1),
    lambda b: b + b"\r",
    lambda b: b"\xef\xbb\xbf" + b,
    lambda b: b.replace(b"1", b"NaN", 1),
    lambda b: b.replace(b"0", b"1e999", 1),
    lambda b: b.replace(b'"', b'"\\ud800', 1),
    lambda b: b.replace(b'"', b'"\\udc00\\ud800', 1),
    lambda b: b.replace(b'"', b'"\\ud83d\\ude00', 1),
    lambda b: b.replace(b'"', b'"\xed\xa0\x80', 1),
    lambda b: b.replace(b'"', b'"\x01', 1),
    lambda b: b.replace(b"]", b",]", 1),
    lambda b: b[: len(b) // 2],
    lambda b: b"[" * 99 + b + b"]" * 99,
    lambda b: b"[" * 100 + b + b"]" * 100,
    lambda b: b.replace(b"\\\\", b"\\\\\\\\", 1),
    lambda b: b.replace(b'\\"', b'\\\\"', 1),
    lambda b: b" \t" + b + b" \n",
)


def _same(line: bytes) -> None:
    expected, got = reference_decode(line), decode(line)
    if isinstance(expected, BadLine):
        assert got == expected, line
        return
    assert isinstance(got, Decoded), line
    assert got.wire == expected.wire, line
    assert _canonical(got.message) == _canonical(expected.message), line


def _canonical(message: object) -> str:
    """A text that tells ints from floats and keeps -0.0 apart from 0.0."""
    return json.dumps(message, default=str, allow_nan=True) + repr(_floats_of(message))


def _floats_of(message: object) -> list[object]:
    if isinstance(message, float):
        return [math.copysign(1.0, message), message]
    if isinstance(message, list):
        return [f for item in message for f in _floats_of(item)]
    if isinstance(message, dict):
        return [f for item in message.values() for f in _floats_of(item)]
    return []


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=_values,
    ascii_only=st.booleans(),
    spaced=st.booleans(),
    edit=st.sampled_from(range(len(_EDITS))),
)
def test_every_line_gets_the_outcome_the_reference_codec_gives(
    value: object, ascii_only: bool, spaced: bool, edit: int
) -> None:
    separators = (", ", ": ") if spaced else (",", ":")
    text = json.dumps({"jsonrpc": "2.0", "id": 1, "params": value}, ensure_ascii=ascii_only, separators=separators)
    line = _EDITS[edit](text.encode("utf-8", errors="surrogatepass"))
    _same(line)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(data=st.binary(max_size=40) | st.builds(lambda b: b'{"a":"' + b + b'"}', st.binary(max_size=12)))
def test_arbitrary_bytes_get_the_outcome_the_reference_codec_gives(data: bytes) -> None:
    _same(data)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(value=_values)
@example(value=1e-07)  # a float that is the whole text (a newer hypothesis drew it in CI)
@example(value=[1e-07, -2.5])
def test_encode_writes_the_reference_bytes(value: object) -> None:
    assert encode(value) == reference_encode(value)


@pytest.mark.parametrize(
    "message",
    [
        {"n": float("nan")},
        {"n": float("inf")},
        {"s": "\ud800"},
        {1: "not a string key"},
        {"big": 10**30},
        {"x": None, "f": 1e16},
    ],
)
def test_encode_refuses_or_writes_what_the_reference_does(message: object) -> None:
    try:
        expected = reference_encode(message)
    except ValueError as error:
        with pytest.raises(ValueError, match=str(error)):
            encode(message)
        return
    assert encode(message) == expected
