"""What every request to the gateway must pass before its body is read: Host and Origin (DNS rebinding),
content type, accepted answers, body size; and the JSON-RPC error answers the gateway gives itself."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from regogate.proxy.relay import INVALID_REQUEST, error_line
from regogate.proxy.transports._flag_rules import is_loopback

__all__ = ["BodyTooLarge", "HttpGuard", "read_body", "rpc_error"]

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
NO_STORE = {"cache-control": "private, no-store"}
"""Answers depend on who asked (a filtered tools/list): no shared cache may keep them."""
MEDIA_TYPE_CACHE = 64
"""Content-Type and Accept values whose media types are kept parsed: a client sends the same ones each time."""


def rpc_error(
    status: int,
    message: str,
    *,
    code: int = INVALID_REQUEST,
    request_id: object = None,
    headers: Mapping[str, str] = {},
) -> Response:
    """A JSON-RPC error answer with an HTTP status (the SDK clients read the error from the body)."""
    body = error_line(request_id, code, message)
    return Response(body, status_code=status, media_type=JSON, headers={**NO_STORE, **headers})


class BodyTooLarge(Exception):
    """The request body is over the limit."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, read no further than ``limit`` bytes (a body that came in one piece is not copied).

    Raises:
        BodyTooLarge: it is longer (by its Content-Length or by what arrived).
        ClientDisconnect: the client went away before the end of the body.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await request.receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@functools.lru_cache(maxsize=MEDIA_TYPE_CACHE)
def _media_types(value: str) -> frozenset[str]:
    return frozenset(part.split(";", 1)[0].strip().lower() for part in value.split(","))


@dataclass(frozen=True)
class HttpGuard:
    """The header checks, from the address the gateway listens on and the hosts and origins allowed."""

    allowed_hosts: frozenset[str] | None
    """Host header values accepted; ``None`` accepts any (a gateway off loopback, behind its own name)."""
    allowed_origins: frozenset[str]
    """Origin header values accepted; a request without Origin (not from a browser) passes."""
    max_body: int

    @classmethod
    def for_listener(
        cls, host: str, port: int, *, tls: bool, hosts: Iterable[str], origins: Iterable[str], max_body: int
    ) -> HttpGuard:
        """On loopback only the loopback names are accepted (plus ``hosts``/``origins``); elsewhere any Host."""
        extra_hosts = {h.lower() for h in hosts}
        extra_origins = {o.rstrip("/").lower() for o in origins}
        if not is_loopback(host):
            return cls(frozenset(extra_hosts) or None, frozenset(extra_origins), max_body)
        names = ("127.0.0.1", "localhost", "[::1]")
        scheme = "https" if tls else "http"
        local_hosts = {f"{name}:{port}" for name in names}
        local_origins = {f"{scheme}://{name}:{port}" for name in names}
        return cls(frozenset(local_hosts | extra_hosts), frozenset(local_origins | extra_origins), max_body)

    def check(self, request: Request) -> Response | None:
        """An error answer for a request from the wrong place, else ``None``."""
        host = request.headers.get("host", "").lower()
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return rpc_error(421, "Host header not allowed (DNS rebinding protection; see --allowed-host)")
        origin = request.headers.get("origin")
        if origin is not None and origin.rstrip("/").lower() not in self.allowed_origins:
            return rpc_error(403, "Origin not allowed (DNS rebinding protection; see --allowed-origin)")
        version = request.headers.get("mcp-protocol-version")
        if version is not None and not _VERSION.fullmatch(version):
            return rpc_error(400, "MCP-Protocol-Version is not a protocol version")
        return None

    @staticmethod
    def check_post(request: Request) -> Response | bool:
        """An error answer for a POST the gateway cannot read or answer, else whether it takes an event stream."""
        if JSON not in _media_types(request.headers.get("content-type", "")):
            return rpc_error(415, "Content-Type must be application/json")
        accepted = _media_types(request.headers.get("accept", ""))
        if JSON not in accepted and "*/*" not in accepted:
            return rpc_error(406, "Accept must include application/json and text/event-stream")
        return EVENT_STREAM in accepted or "*/*" in accepted
