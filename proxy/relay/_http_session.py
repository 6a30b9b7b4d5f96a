"""One Streamable HTTP session's plumbing: the headers of each era, one bounded HTTP exchange, the DELETE.

``open`` retries only a connection that was never made (the server cannot have seen the request),
and turns every transport fault into a ``HttpFailure`` carrying the JSON-RPC error the request's
caller gets. Nothing here logs or raises text that may hold a header value or the URL's secrets.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx

from regogate.proxy.relay._http_headers import ToolHeaders, header_value
from regogate.proxy.relay._http_target import HttpTarget
from regogate.proxy.relay._http_transport import HttpTransport, Reply
from regogate.proxy.relay._wire import PROTOCOL_VERSION_META_KEY, UPSTREAM_GONE, is_modern

logger = logging.getLogger(__name__)

UPSTREAM_UNAVAILABLE = -31003
"""The server could not be reached, timed out, or answered with an HTTP error."""
SESSION_ENDED = -31004
"""The server ended the session (404 on a live ``Mcp-Session-Id``)."""

CONNECT_ATTEMPTS = 3
"""A refused connection is retried (the request never left): a restarting server gets a moment."""
CONNECT_RETRY_DELAY = 0.2
"""Pause between connection attempts."""
MAX_CONNECTIONS = 66
"""Concurrent requests in flight plus the GET stream and a DELETE."""
MAX_KEEPALIVE = 8
"""Connections kept open between bursts."""
CLOSE_TIMEOUT = 1.0
"""Bound on closing a response and on the DELETE at shutdown; under a host's 2 s grace."""

SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
_NAME_PARAMS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


class HttpFailure(Exception):
    """Why a request gets an error answer from the bridge instead of the server's."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def is_modern_message(message: dict[str, object]) -> bool:
    """A 2026-07-28-era message: its protocol version travels in ``params._meta``."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and is_modern(meta.get(PROTOCOL_VERSION_META_KEY))


class HttpSession:
    """The HTTP client, the session id and the negotiated version for one upstream."""

    def __init__(self, target: HttpTarget, transport: HttpTransport) -> None:
        self.target = target
        self._transport = transport
        self.session_id: str | None = None
        self.version: str | None = None
        self.tools = ToolHeaders()
        """The ``Mcp-Param-*`` declarations of the tools the server listed (2026-07-28 requests)."""

    @classmethod
    @asynccontextmanager
    async def connect(cls, target: HttpTarget) -> AsyncIterator[HttpSession]:
        """Connections with bounded timeouts, no redirects followed, no proxy settings from the environment."""
        transport = HttpTransport(
            target.url, max_connections=MAX_CONNECTIONS, max_keepalive=MAX_KEEPALIVE, headers=target.headers
        )
        try:
            yield cls(target, transport)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
                await transport.aclose()

    def restart(self) -> None:
        """A new ``initialize`` is on its way: forget the old session."""
        self.session_id, self.version = None, None

    def headers(self, message: dict[str, object]) -> dict[str, str]:
        """Headers for POSTing ``message``: the session's, or a 2026-07-28 request's own routing headers.

        Every routing header is read from ``message``, the parsed form of the exact bytes POSTed.
        """
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        if not is_modern_message(message):
            headers.update(self.session_headers())
            return headers
        params = message["params"]
        assert isinstance(params, dict)
        meta = params["_meta"]
        assert isinstance(meta, dict)
        headers[VERSION_HEADER] = header_value(str(meta[PROTOCOL_VERSION_META_KEY]))
        method = message.get("method")
        if isinstance(method, str):
            headers["mcp-method"] = header_value(method)
            name = params.get(_NAME_PARAMS.get(method, ""))
            if isinstance(name, str):
                headers["mcp-name"] = header_value(name)
            if method == "tools/call":
                headers.update(self.tools.for_call(params))
        return headers

    def session_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.session_id is not None:
            headers[SESSION_HEADER] = self.session_id
        if self.version is not None:
            headers[VERSION_HEADER] = self.version
        return headers

    def note_session(self, response: Reply) -> None:
        """Keep the session id the server assigned (the first one; later ones cannot move the session)."""
        session = response.headers.get(SESSION_HEADER)
        if session and self.session_id is None and session.isascii() and session.isprintable():
            self.session_id = session

    def note_version(self, message: dict[str, object]) -> None:
        """Keep the protocol version from the ``initialize`` answer."""
        result = message.get("result")
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        if isinstance(version, str) and version.isascii() and version.isprintable():
            self.version = version

    def open(self, method: str, body: bytes | None, headers: dict[str, str], *, idle: bool = False) -> Opened:
        """Send one HTTP request, retrying only a connection never made; the answer streams (``async with``).

        ``idle``: the answer may stay silent indefinitely (the GET stream), so no read timeout.

        Raises:
            HttpFailure: the exchange failed; its code and message are what the caller answers.
        """
        return Opened(self, method, body, headers, idle)

    async def _send(self, method: str, body: bytes | None, headers: dict[str, str], idle: bool) -> Reply:
        target = self.target
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                return await self._transport.send(
                    method,
                    headers.items(),
                    body,
                    connect=target.connect_timeout,
                    write=target.read_timeout,
                    read=None if idle else target.read_timeout,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt + 1 == CONNECT_ATTEMPTS:
                    raise HttpFailure(UPSTREAM_UNAVAILABLE, f"upstream unreachable: {self.describe(exc)}") from exc
                await anyio.sleep(CONNECT_RETRY_DELAY)
            except httpx.TimeoutException as exc:
                raise HttpFailure(UPSTREAM_UNAVAILABLE, "upstream timed out") from exc
            except httpx.HTTPError as exc:
                raise HttpFailure(UPSTREAM_UNAVAILABLE, f"upstream connection failed: {self.describe(exc)}") from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def delete(self) -> None:
        """End the session on the server (bounded, best effort)."""
        if self.session_id is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
            try:
                async with self.open("DELETE", None, self.session_headers()) as response:
                    if response.status_code not in (200, 202, 204, 404, 405):
                        logger.info("session DELETE answered HTTP %d", response.status_code)
            except HttpFailure as exc:
                logger.info("session DELETE failed: %s", exc.message)
        self.session_id = None

    def describe(self, exc: BaseException) -> str:
        """An exception as text with no secret in it (no URL query, no header value)."""
        detail = str(exc)
        return self.target.scrub(f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__)


class Opened:
    """``HttpSession.open``'s context: the answer while the block runs; its faults as ``HttpFailure``; closed after.

    A class rather than a generator-based context manager: it is entered once per request.
    """

    __slots__ = ("_body", "_headers", "_http", "_idle", "_method", "_response")

    def __init__(self, http: HttpSession, method: str, body: bytes | None, headers: dict[str, str], idle: bool) -> None:
        self._http, self._method, self._body, self._headers, self._idle = http, method, body, headers, idle
        self._response: Reply | None = None

    async def __aenter__(self) -> Reply:
        self._response = await self._http._send(self._method, self._body, self._headers, self._idle)
        return self._response

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            if isinstance(exc, httpx.TimeoutException):
                raise HttpFailure(UPSTREAM_UNAVAILABLE, "upstream timed out") from exc
            if isinstance(exc, httpx.HTTPError):
                raise HttpFailure(UPSTREAM_GONE, f"upstream connection broke: {self._http.describe(exc)}") from exc
        finally:
            if self._response is not None:
                await self._response.aclose()  # bounded and shielded when it has to close the connection
