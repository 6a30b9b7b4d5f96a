"""JSON-RPC lines as the relay sees them: ids, strict parsing, and the messages it writes itself."""

from __future__ import annotations

import json

PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_META_KEY = "io.modelcontextprotocol/clientInfo"
LOG_LEVEL_META_KEY = "io.modelcontextprotocol/logLevel"
MODERN_ERA = "2026-07-28"
"""First protocol version whose results must carry ``resultType``; later dates inherit it."""

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
UPSTREAM_MALFORMED = -31001
"""Proxy fault codes sit outside the JSON-RPC/MCP reserved range: the upstream's reply was unusable."""
UPSTREAM_GONE = -31002

Key = tuple[str, object]


def id_key(request_id: object) -> Key | None:
    """A dict key that keeps ``1`` and ``"1"`` apart; ``None`` for ids that are not str/int."""
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        return None
    return (type(request_id).__name__, request_id)


def is_modern(version: object) -> bool:
    """True for protocol versions that require ``resultType`` on results."""
    return isinstance(version, str) and version >= MODERN_ERA


#: Messages are trees parsed from JSON or built here, so the cycle check (a third of the cost) is skipped.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def dumps(message: object) -> bytes:
    """Compact UTF-8 JSON, for the few messages the relay writes or rewrites."""
    return _ENCODER.encode(message).encode()


def error_line(request_id: object, code: int, message: str) -> bytes:
    """A JSON-RPC error response."""
    return dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


def denial_line(request_id: object, text: str, *, rule: str | None, decision_id: str, modern: bool) -> bytes:
    """A tool result with ``isError`` that carries the refusal to the model."""
    result: dict[str, object] = {
        "content": [{"type": "text", "text": text}],
        "isError": True,
        "_meta": {"regogate/decision": {"rule": rule, "decision_id": decision_id}},
    }
    if modern:
        result["resultType"] = "complete"
    return dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


class AmbiguousJSON(ValueError):
    """An object repeats a key; parsers disagree on which value wins."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise AmbiguousJSON("duplicate object key")
    return obj


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def loads_strict(line: bytes) -> object:
    """Parse a client line strictly: no duplicate keys, no NaN/Infinity.

    Raises:
        ValueError: not strict JSON (``AmbiguousJSON`` for duplicate keys).
    """
    return json.loads(line, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)


def call_succeeded(message: dict[str, object]) -> bool:
    """A tools/call response that is a final, non-error result."""
    result = message.get("result")
    return (
        "error" not in message
        and isinstance(result, dict)
        and result.get("isError") is not True
        and result.get("resultType", "complete") == "complete"
    )
