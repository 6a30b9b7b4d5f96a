"""JSON-RPC rules as the relay applies them: ids, protocol eras, and the messages it writes itself."""

from __future__ import annotations

from regogate.proxy.relay._codec import INVALID_REQUEST, PARSE_ERROR, encode

__all__ = [
    "CLIENT_INFO_META_KEY",
    "INVALID_REQUEST",
    "LOG_LEVEL_META_KEY",
    "MODERN_ERA",
    "PARSE_ERROR",
    "PROTOCOL_VERSION_META_KEY",
    "UPSTREAM_GONE",
    "UPSTREAM_MALFORMED",
    "Key",
    "call_refused",
    "denial_line",
    "error_line",
    "id_key",
    "is_modern",
]

PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_META_KEY = "io.modelcontextprotocol/clientInfo"
LOG_LEVEL_META_KEY = "io.modelcontextprotocol/logLevel"
MODERN_ERA = "2026-07-28"
"""First protocol version whose results must carry ``resultType``; later dates inherit it."""

UPSTREAM_MALFORMED = -31001
"""Proxy fault codes sit outside the JSON-RPC/MCP reserved range: the upstream's reply was unusable."""
UPSTREAM_GONE = -31002

MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer every JSON reader keeps exact; a JavaScript server would answer a larger id as another."""

Key = tuple[str, object]


def id_key(request_id: object) -> Key | None:
    """A dict key that keeps ``1`` and ``"1"`` apart; ``None`` for ids MCP does not allow.

    MCP ids are strings or integers; floats, booleans, null, arrays, objects and
    integers beyond what JavaScript keeps exact are refused, since servers echo them
    back differently and an answer could then not be matched to its request.
    """
    if isinstance(request_id, str):
        return ("str", request_id)
    if isinstance(request_id, int) and not isinstance(request_id, bool) and abs(request_id) <= MAX_SAFE_INTEGER:
        return ("int", request_id)
    return None


def is_modern(version: object) -> bool:
    """True for protocol versions that require ``resultType`` on results."""
    return isinstance(version, str) and version >= MODERN_ERA


def error_line(request_id: object, code: int, message: str) -> bytes:
    """A JSON-RPC error response."""
    return encode({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


def denial_line(request_id: object, text: str, *, rule: str | None, decision_id: str, modern: bool) -> bytes:
    """A tool result with ``isError`` that carries the refusal to the model."""
    result: dict[str, object] = {
        "content": [{"type": "text", "text": text}],
        "isError": True,
        "_meta": {"regogate/decision": {"rule": rule, "decision_id": decision_id}},
    }
    if modern:
        result["resultType"] = "complete"
    return encode({"jsonrpc": "2.0", "id": request_id, "result": result})


def call_refused(message: dict[str, object]) -> bool:
    """A tools/call answer that says the call did not take effect.

    That is a JSON-RPC error, a result with ``isError`` true, or a result that is not
    final (``resultType`` other than ``complete``: the client must retry under a new id).
    Anything else, a malformed answer included, may mean the tool ran.
    """
    if "error" in message:
        return True
    result = message.get("result")
    return isinstance(result, dict) and (
        result.get("isError") is True or result.get("resultType", "complete") != "complete"
    )
