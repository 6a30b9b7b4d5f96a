"""Bytes to messages and back: every line is parsed once, strictly; every line written is our own encoding.

JSON lets a raw CR stand as whitespace, and readers disagree on where a line ends
(``\\n``; ``\\r\\n``; bare ``\\r``; universal newlines; ``str.splitlines``) and on
encodings (UTF-16/32 detection, a BOM). So the relay never passes a client's or a
server's bytes on: it parses each line once and writes its own encoding of the
parsed message, which is compact UTF-8 JSON holding no raw control character and no
Unicode line separator, so every such reader sees exactly one message, the one that
was decided. Lines whose meaning depends on the reader are refused instead of
guessed at: bytes that are not UTF-8, a byte order mark, a CR anywhere but at the
very end (CRLF framing is accepted), duplicate object keys, ``NaN``/``Infinity`` or
numbers that overflow to them, and nesting deeper than ``MAX_DEPTH``.

Speed: a line is parsed and encoded by orjson when that gives exactly the message and
the bytes the standard library would (no float anywhere in it, every integer within 64
bits, no lone surrogate); any other line takes the standard library's path, which is
the reference. A line that already is its own canonical encoding needs no second scan.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from array import array
from dataclasses import dataclass

import orjson

from regogate.proxy.relay._framing import sniff_id

PARSE_ERROR = -32700
INVALID_REQUEST = -32600

MAX_DEPTH = 100
"""Deepest nesting of arrays and objects accepted, envelope included; real MCP messages stay under 30."""

_BRACKETS_ONLY = bytes(b for b in range(256) if b not in b"[]{}")
_STRUCTURE_ONLY = bytes(b for b in range(256) if b not in b'"[]{}:')
# An opener counts +1 and a closer -1 as signed bytes, so a running sum is the depth.
_DEPTH_STEPS = bytes.maketrans(b"[{]}", bytes([1, 1, 255, 255]))
_LINE_BREAKS = ("\x85", "\u2028", "\u2029")
"""Non-ASCII characters that ``str.splitlines`` and some JavaScript readers treat as line ends."""
_UTF8_LINE_BREAKS = tuple((char.encode(), f"\\u{ord(char):04x}".encode()) for char in _LINE_BREAKS)
_BOM = b"\xef\xbb\xbf"
_FLOAT_LIKE = tuple(re.compile(re.escape(opener) + rb"-?[0-9]+[.eE]") for opener in (b":", b",", b"["))
"""Every float orjson writes looks like one of these; no integer does (a string may: a false alarm, never a miss).
One pattern per opener, since a pattern that starts with a literal is searched for much faster."""


_LEADING_FLOAT = re.compile(rb"-?[0-9]+[.eE]")
"""A float that is the whole text (no opener before it)."""


def _float_like(wire: bytes) -> bool:
    return _LEADING_FLOAT.match(wire) is not None or any(pattern.search(wire) is not None for pattern in _FLOAT_LIKE)


#: Parsed messages are trees, so the cycle check (a third of the cost) is skipped.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=False)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=False, allow_nan=False)


@dataclass(frozen=True)
class BadLine:
    """A line that was refused, with what could be read of its envelope for the answer."""

    code: int
    reason: str
    request_id: object = None
    """The envelope ``id`` if it could be read unambiguously, else ``None``."""
    method: object = None
    """The envelope ``method`` if it could be read unambiguously, else ``None``."""
    has_id: bool = False
    is_answer: bool = False
    """The line is a response (``result`` or ``error``, no ``method``)."""


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _outside_strings(data: bytes) -> bytes:
    """The bytes of a JSON text that are not inside a string (exact for valid JSON)."""
    # Drop escaped backslashes, then escaped quotes: every quote left opens or closes a string.
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(unescaped.split(b'"')[::2])


def _structure(data: bytes) -> bytes:
    """The brackets and colons of a JSON text that are not inside a string (exact for valid JSON)."""
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Two quotes side by side enclose no structure (or nothing but a gap between two strings):
    # dropping them keeps every other quote's parity, so the split below sees few strings.
    skeleton = unescaped.translate(None, _STRUCTURE_ONLY).replace(b'""', b"")
    return b"".join(skeleton.split(b'"')[::2]) if b'"' in skeleton else skeleton


def _deeper_than(outside: bytes, limit: int) -> bool:
    skeleton = outside.translate(None, _BRACKETS_ONLY)
    if len(skeleton) <= limit:
        return False
    # Fast path: a round peels at most two levels, so emptied within limit/2 rounds means shallow enough.
    peeled = skeleton
    for _ in range(limit // 2):
        peeled = peeled.replace(b"[]", b"").replace(b"{}", b"")
        if not peeled:
            return False
    return max(itertools.accumulate(array("b", skeleton.translate(_DEPTH_STEPS)))) > limit


def too_deep(line: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` (brackets inside strings do not count)."""
    return _deeper_than(_structure(line), limit)


def _envelope(text: str, code: int, reason: str) -> BadLine:
    """Read ``id`` and ``method`` of a line refused for its form, where each occurs once at the top."""
    try:
        pairs = json.loads(text, object_pairs_hook=list, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return BadLine(code, reason)
    if not isinstance(pairs, list) or not all(isinstance(p, tuple) for p in pairs):
        return BadLine(code, reason)
    found: dict[str, list[object]] = {}
    for key, value in pairs:
        found.setdefault(key, []).append(value)
    ids, methods = found.get("id", []), found.get("method", [])
    request_id = ids[0] if len(ids) == 1 and not isinstance(ids[0], list) else None
    method = methods[0] if len(methods) == 1 else None
    is_answer = "method" not in found and ("result" in found or "error" in found)
    return BadLine(code, reason, request_id, method, has_id=request_id is not None, is_answer=is_answer)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A message and its canonical encoding: the bytes to forward while the message is unchanged."""

    message: object
    wire: bytes


def decode(line: bytes) -> Decoded | BadLine:
    """The one message a line holds, or why it was refused.

    A trailing CR (CRLF framing) is dropped first. Never raises.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    structure = _structure(line)
    if _deeper_than(structure, MAX_DEPTH):
        request_id = sniff_id(line)
        reason = f"nested deeper than {MAX_DEPTH} levels"
        return BadLine(INVALID_REQUEST, reason, request_id, has_id=request_id is not None)
    fast = _decode_fast(line)
    if fast is not None:
        message, wire = fast
        if wire == line:  # its own canonical encoding: no key collapsed, no raw CR
            return Decoded(message, wire)
    else:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return BadLine(PARSE_ERROR, "parse error: not UTF-8")
        if text.startswith("\ufeff"):
            return BadLine(PARSE_ERROR, "parse error: byte order mark")
        try:
            message = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
        except RecursionError:  # unreachable below MAX_DEPTH; kept so no input can end the session
            return BadLine(INVALID_REQUEST, f"nested deeper than {MAX_DEPTH} levels")
        except ValueError:
            return BadLine(PARSE_ERROR, "parse error: not JSON")
        wire = encode(message)
    # Each object member has one colon outside strings; a repeated key collapses into one member.
    if structure.count(b":") != _structure(wire).count(b":"):
        return _envelope(line.decode("utf-8"), INVALID_REQUEST, "duplicate object key")
    if b"\r" in line:
        return _envelope(line.decode("utf-8"), INVALID_REQUEST, "bare CR in line (readers would split it)")
    return Decoded(message, wire)


def _decode_fast(line: bytes) -> tuple[object, bytes] | None:
    """orjson's parse and encoding of a line, when both are what the standard library would give; else None.

    orjson refuses everything the reference refuses (and lone surrogates, big integers and
    a BOM besides, which the reference path then judges); what it reads as a float (an
    integer past 64 bits included) is left to the reference, whose float text differs.
    """
    try:
        message = orjson.loads(line)
        wire = orjson.dumps(message)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    if _float_like(wire) and _float_like(_outside_strings(wire)):
        return None
    return message, _escape_line_breaks(wire)


def _escape_line_breaks(wire: bytes) -> bytes:
    if wire.isascii():  # the usual case: every line break character is beyond ASCII
        return wire
    for raw, escaped in _UTF8_LINE_BREAKS:
        if raw in wire:  # only ever inside a string, where its escape means the same
            wire = wire.replace(raw, escaped)
    return wire


def encode(message: object) -> bytes:
    """Compact UTF-8 JSON on one line: no raw control characters, no Unicode line separators."""
    try:
        wire = orjson.dumps(message)
    except orjson.JSONEncodeError:  # a big integer, a lone surrogate, a key that is not a string...
        return _encode_reference(message)
    # orjson writes floats its own way and NaN as null; the reference writes the one and refuses the other.
    if b"null" in wire or _float_like(wire):
        return _encode_reference(message)
    return _escape_line_breaks(wire)


def _encode_reference(message: object) -> bytes:
    text = _ENCODER.encode(message)
    for char in _LINE_BREAKS:
        if char in text:  # only ever inside a string, where its escape means the same
            text = text.replace(char, f"\\u{ord(char):04x}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape: keep it escaped
        return _ASCII_ENCODER.encode(message).encode("ascii")
