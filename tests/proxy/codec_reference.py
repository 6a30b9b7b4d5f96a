"""The codec as it was before orjson (standard library only): the oracle of the differential test.

Kept byte for byte in behaviour: it parses with ``json.loads``, encodes with ``json.JSONEncoder``
and finds duplicate keys by counting colons outside strings before and after re-encoding. The
helpers it imports from the codec are the ones the change left as they were.
"""

from __future__ import annotations

import json

from regogate.proxy.relay._codec import (
    INVALID_REQUEST,
    MAX_DEPTH,
    PARSE_ERROR,
    BadLine,
    Decoded,
    _deeper_than,
    _envelope,
    _finite,
    _outside_strings,
    _reject_constant,
)
from regogate.proxy.relay._framing import sniff_id

_LINE_BREAKS = ("\x85", "\u2028", "\u2029")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=False)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=False, allow_nan=False)


def reference_encode(message: object) -> bytes:
    text = _ENCODER.encode(message)
    for char in _LINE_BREAKS:
        if char in text:
            text = text.replace(char, f"\\u{ord(char):04x}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode(message).encode("ascii")


def reference_decode(line: bytes) -> Decoded | BadLine:
    if line.endswith(b"\r"):
        line = line[:-1]
    outside = _outside_strings(line)
    if _deeper_than(outside, MAX_DEPTH):
        request_id = sniff_id(line)
        reason = f"nested deeper than {MAX_DEPTH} levels"
        return BadLine(INVALID_REQUEST, reason, request_id, has_id=request_id is not None)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return BadLine(PARSE_ERROR, "parse error: not UTF-8")
    if text.startswith("\ufeff"):
        return BadLine(PARSE_ERROR, "parse error: byte order mark")
    try:
        message: object = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except RecursionError:
        return BadLine(INVALID_REQUEST, f"nested deeper than {MAX_DEPTH} levels")
    except ValueError:
        return BadLine(PARSE_ERROR, "parse error: not JSON")
    wire = reference_encode(message)
    if outside.count(b":") != _outside_strings(wire).count(b":"):
        return _envelope(text, INVALID_REQUEST, "duplicate object key")
    if b"\r" in line:
        return _envelope(text, INVALID_REQUEST, "bare CR in line (readers would split it)")
    return Decoded(message, wire)
