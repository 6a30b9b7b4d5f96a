"""``/mcp``: the Streamable HTTP transport (POST, GET event stream, DELETE) over the gateway's sessions.

A POSTed request waits for the first message the relay routes to it: the answer itself goes back as
``application/json``; a server message first (progress, sampling, a log) turns the answer into an
event stream that ends with the answer. Notifications and the client's answers get 202. A session
starts with an ``initialize`` POST without ``Mcp-Session-Id`` and belongs to the principal that
started it; any other request must name a live session of the same principal. Denials are ordinary
answers (HTTP 200, a tool result with ``isError``), exactly as on stdio.

A 2026-07-28 request (its ``_meta`` names that protocol version) needs no session: it is served on an
upstream the pool lends for that one request (the same principal's idle one when there is one), and
its answer carries no ``Mcp-Session-Id``; a notification in that era is acknowledged and dropped, as
the era defines none from client to server on this wire. An upstream that turns down ``server/discover``
(the SDK client's probe in its ``auto`` mode) speaks an older era: it is stopped as soon as that answer
is out, as the client goes on with a session of its own, and later probes get that refusal replayed
without an upstream (``_discover``). Event streams carry a comment line after
``KEEPALIVE`` seconds of silence, so a proxy's idle timeout does not cut them; for the same reason a
POSTed request still unanswered after that long gets its answer as an event stream when the client
accepts one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from regogate.core import RegogateError
from regogate.proxy.relay import PROTOCOL_VERSION_META_KEY, BadLine, Decoded, decode, id_key, is_modern
from regogate.proxy.transports._client_link import Exchange, Outgoing
from regogate.proxy.transports._discover import DISCOVER, DiscoverRefusals
from regogate.proxy.transports._gateway_session import GatewaySession
from regogate.proxy.transports._http_guard import (
    EVENT_STREAM,
    JSON,
    NO_STORE,
    BodyTooLarge,
    HttpGuard,
    read_body,
    rpc_error,
)
from regogate.proxy.transports._session_pool import PoolClosed, SessionPool

__all__ = ["Authenticator", "McpEndpoint", "same_principal"]

logger = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"
RETRY_AFTER = "5"
"""Seconds a client is told to wait when no session can be opened now."""
KEEPALIVE = 15.0
"""Seconds of silence on an event stream before a comment line keeps proxies from closing it."""
UNWATCHED = 0.5
"""Seconds a request waits for its first message before a task watches for its client leaving."""
HEADER_MISMATCH = -32020
"""MCP 2026-07-28: a routing header that contradicts the body."""


class Authenticator(Protocol):
    """Who is calling: the principal's claims, or the answer refusing the request (401)."""

    async def __call__(self, request: Request) -> Mapping[str, object] | Response: ...


def same_principal(a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    """Two principals are the same caller when their ``id`` and issuer agree."""
    return a.get("id") == b.get("id") and a.get("iss") == b.get("iss")


def _sse_event(line: bytes) -> bytes:
    return b"event: message\ndata: " + line + b"\n\n"


KEEPALIVE_COMMENT = b": keep-alive\n\n"
"""An SSE comment: clients skip it; proxies see traffic."""


def _meta_version(message: dict[str, object]) -> object:
    """The protocol version a request carries in its ``_meta`` (2026-07-28 era), else ``None``."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None


def _header_mismatch(request: Request, message: dict[str, object], version: object) -> str | None:
    """Why the routing headers contradict the body (MCP 2026-07-28), or ``None``.

    A proxy in front may route on the headers while regogate decides on the body: they must agree.
    """
    for header, body in (("mcp-protocol-version", version), ("mcp-method", message.get("method"))):
        values = request.headers.getlist(header)
        if len(values) > 1:
            return f"{header} header appears more than once"
        if values and values[0] != body:
            return f"{header} header does not match the body"
    return None


class McpEndpoint:
    """The ASGI app mounted at ``/mcp``."""

    def __init__(self, pool: SessionPool, guard: HttpGuard, authenticate: Authenticator) -> None:
        self._pool = pool
        self._guard = guard
        self._authenticate = authenticate
        self._probes = DiscoverRefusals()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self._dispatch(request)
        await response(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        refused = self._guard.check(request)
        if refused is not None:
            return refused
        if request.method not in ("POST", "GET", "DELETE"):
            return rpc_error(405, "method not allowed", headers={"allow": "GET, POST, DELETE"})
        who = await self._authenticate(request)
        if isinstance(who, Response):
            return who
        if request.method == "POST":
            return await self._post(request, who)
        session = self._session(request, who)
        if isinstance(session, Response):
            return session
        if request.method == "DELETE":
            await self._pool.close(session)
            return Response(status_code=200, headers=NO_STORE)
        return self._listen(request, session)

    def _session(self, request: Request, who: Mapping[str, object]) -> GatewaySession | Response:
        session_id = request.headers.get(SESSION_HEADER)
        if session_id is None:
            return rpc_error(400, "Mcp-Session-Id header required; a session starts with initialize")
        session = self._pool.get(session_id)
        if session is None:
            return rpc_error(404, "session not found (it ended or never existed); start a new one with initialize")
        if not same_principal(session.principal, who):
            return rpc_error(403, "this session belongs to another principal")
        session.touch()
        return session

    async def _post(self, request: Request, who: Mapping[str, object]) -> Response:
        sse = self._guard.check_post(request)
        if isinstance(sse, Response):
            return sse
        try:
            body = await read_body(request, self._guard.max_body)
        except BodyTooLarge:
            return rpc_error(413, f"request body larger than {self._guard.max_body} bytes")
        except ClientDisconnect:
            return Response(status_code=499)  # nobody reads it: the client left in the middle of its body
        decoded = decode(body)
        if isinstance(decoded, BadLine):
            return rpc_error(400, decoded.reason, code=decoded.code, request_id=decoded.request_id)
        message = decoded.message
        if not isinstance(message, dict):
            reason = "batches are not supported" if isinstance(message, list) else "not a JSON-RPC object"
            return rpc_error(400, f"invalid request: {reason}")
        method = message.get("method")
        is_request = "id" in message and method is not None
        version = _meta_version(message)
        if SESSION_HEADER not in request.headers and is_modern(version):
            return await self._post_modern(request, who, decoded, message, sse, version)
        new = method == "initialize" and is_request and SESSION_HEADER not in request.headers
        if new:
            try:
                session = await self._pool.create(who)
            except PoolClosed as exc:
                return rpc_error(503, str(exc), request_id=message.get("id"), headers={"retry-after": RETRY_AFTER})
            except RegogateError as exc:
                logger.error("cannot start a session's upstream: %s", exc)
                return rpc_error(502, "the upstream server could not be started", request_id=message.get("id"))
        else:
            found = self._session(request, who)
            if isinstance(found, Response):
                return found
            session = found
        headers = {**NO_STORE, SESSION_HEADER: session.id}
        if not is_request:
            if method == "notifications/cancelled":
                params = message.get("params")
                if isinstance(params, dict) and "requestId" in params:
                    session.link.cancel_exchange(params["requestId"])
            if not await session.link.submit(decoded):
                return rpc_error(503, "the session is closing or busy", headers=headers)
            return Response(status_code=202, headers=headers)
        request_id = message["id"]
        if self._pool.draining and not new:
            return rpc_error(503, "the gateway is shutting down", request_id=request_id, headers=headers)
        if id_key(request_id) is None:
            return rpc_error(400, "invalid request: id must be a string or an integer", request_id=None)
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        exchange = session.link.open_exchange(request_id, token, sse=sse)
        if exchange is None:
            return rpc_error(409, "a request with this id is already in flight", request_id=request_id, headers=headers)
        if not await session.link.submit(decoded):
            session.link.close_exchange(exchange)
            return rpc_error(503, "the session is closing or busy", request_id=request_id, headers=headers)
        first = await _first_or_gone(exchange, request.receive, patience=KEEPALIVE if sse else math.inf)
        if first is None:
            session.link.close_exchange(exchange)
            if new:
                await self._pool.close(session)
            return Response(status_code=499)  # nobody reads it: the client went away
        line, final = first
        if not final:
            return StreamingResponse(
                self._event_stream(session, exchange, line), media_type=EVENT_STREAM, headers=headers
            )
        session.link.close_exchange(exchange)
        if new and b'"error"' in line and _is_error(line):
            await self._pool.close(session)
            del headers[SESSION_HEADER]
        return Response(line, status_code=200, media_type=JSON, headers=headers)

    async def _post_modern(
        self,
        request: Request,
        who: Mapping[str, object],
        decoded: Decoded,
        message: dict[str, object],
        sse: bool,
        version: object,
    ) -> Response:
        """One 2026-07-28 message without a session (see the module's docstring)."""
        request_id = message.get("id")
        mismatch = _header_mismatch(request, message, version)
        if mismatch is not None:
            return rpc_error(400, mismatch, code=HEADER_MISMATCH, request_id=request_id)
        if "id" not in message or "method" not in message:
            return Response(status_code=202, headers=NO_STORE)
        if not isinstance(request_id, str | int) or id_key(request_id) is None:
            return rpc_error(400, "invalid request: id must be a string or an integer", request_id=None)
        if self._pool.draining:
            return rpc_error(
                503, "the gateway is shutting down", request_id=request_id, headers={"retry-after": RETRY_AFTER}
            )
        probe = message.get("method") == DISCOVER
        if probe and (replayed := self._probes.replay(request_id)) is not None:
            return Response(replayed, status_code=200, media_type=JSON, headers=NO_STORE)
        try:
            session = await self._pool.borrow(who)
        except PoolClosed as exc:
            return rpc_error(503, str(exc), request_id=request_id, headers={"retry-after": RETRY_AFTER})
        except RegogateError as exc:
            logger.error("cannot start an upstream for a 2026-07-28 request: %s", exc)
            return rpc_error(502, "the upstream server could not be started", request_id=request_id)
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        exchange = session.link.open_exchange(request_id, token, sse=sse)
        if exchange is None or not await session.link.submit(decoded):
            self._pool.give_back(session, reusable=False)
            return rpc_error(503, "the upstream is closing", request_id=request_id)
        first = await _first_or_gone(exchange, request.receive, patience=KEEPALIVE if sse else math.inf)
        if first is None:
            session.link.close_exchange(exchange)
            self._pool.give_back(session, reusable=False)
            return Response(status_code=499)
        line, final = first
        if not final:

            def done(answer: bytes | None) -> None:
                refused = answer is not None and probe and self._probes.refused(answer)
                self._pool.give_back(session, reusable=answer is not None and not refused)

            stream = self._event_stream(session, exchange, line, done)
            return StreamingResponse(stream, media_type=EVENT_STREAM, headers=NO_STORE)
        session.link.close_exchange(exchange)
        self._pool.give_back(session, reusable=not (probe and self._probes.refused(line)))
        return Response(line, status_code=200, media_type=JSON, headers=NO_STORE)

    async def _event_stream(
        self,
        session: GatewaySession,
        exchange: Exchange,
        first: bytes,
        done: Callable[[bytes | None], None] | None = None,
    ) -> AsyncIterator[bytes]:
        """The exchange's messages as events; ``done`` gets the answer (``None`` if none came) at the end."""
        answered = False
        line = first
        try:
            yield _sse_event(first) if first else KEEPALIVE_COMMENT
            while not answered:
                try:
                    item = await exchange.receive(KEEPALIVE)
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                if item is None:
                    yield KEEPALIVE_COMMENT
                    continue
                line, answered = item
                yield _sse_event(line)
        finally:
            session.link.close_exchange(exchange)
            if done is not None:
                done(line if answered else None)

    def _listen(self, request: Request, session: GatewaySession) -> Response:
        if EVENT_STREAM not in request.headers.get("accept", ""):
            return rpc_error(406, "Accept must include text/event-stream")
        stream = session.link.listen()
        if stream is None:
            return rpc_error(409, "this session's GET stream is open already")

        async def events() -> AsyncIterator[bytes]:
            try:
                while True:
                    line: bytes | None = None
                    with anyio.move_on_after(KEEPALIVE):
                        try:
                            line = await stream.receive()
                        except (anyio.EndOfStream, anyio.ClosedResourceError):
                            return
                    yield KEEPALIVE_COMMENT if line is None else _sse_event(line)
            finally:
                session.link.unlisten(stream)

        headers = {**NO_STORE, SESSION_HEADER: session.id}
        return StreamingResponse(events(), media_type=EVENT_STREAM, headers=headers)


def _is_error(line: bytes) -> bool:
    decoded = decode(line)
    return not isinstance(decoded, BadLine) and isinstance(decoded.message, dict) and "error" in decoded.message


SILENT: Outgoing = (b"", False)
"""No message within the patience given: the answer becomes an event stream, opened by a keep-alive."""


async def _first_or_gone(exchange: Exchange, receive: Receive, *, patience: float) -> Outgoing | None:
    """The first message for the exchange; ``SILENT`` after ``patience`` seconds without one; ``None`` if
    the client disconnects (or the session ends) first.

    Most answers come within ``UNWATCHED``: until then nothing watches for a disconnect (a task per
    request cost more than the rest of the endpoint's work); a client gone sooner is seen then.
    """
    try:
        first = await exchange.receive(min(patience, UNWATCHED))
    except (anyio.EndOfStream, anyio.ClosedResourceError):
        return None
    if first is not None:
        return first
    patience -= UNWATCHED
    if patience <= 0:
        return SILENT
    first = SILENT
    gone = False
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        try:
            first = await exchange.receive(patience) or SILENT
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            first = None
        tg.cancel_scope.cancel()
    return None if gone else first
