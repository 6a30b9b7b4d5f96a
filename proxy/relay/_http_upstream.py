"""An MCP server reached over Streamable HTTP, presented to the relay as the same two line streams as a process.

Every line the relay sends is POSTed. A request's answer comes back as ``application/json`` or as
an event stream that may carry the server's own requests and notifications first; every message
is handed to the relay as one line. ``Mcp-Session-Id`` and the negotiated ``MCP-Protocol-Version``
go on every later request; a 2026-07-28 request (version in ``_meta``) is sent on its own with its
``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name`` and ``Mcp-Param-*`` headers
(``_http_headers``). An answer stream that breaks after the server numbered its events is resumed
with GET and ``Last-Event-ID``. Once a session exists, a GET stream carries server-initiated
messages (both in ``_http_listen``). A 404 on a live session means the server ended it: open
requests are answered with an error and the upstream ends, as a server process exiting would.

Attached to a relay (``ParsedSink``), it is handed messages the relay already parsed and a
``tools/call``'s exchange runs in that call's own task; server messages go to the relay as
``_http_handoff`` says. Used on its own (``regogate scan``, tests), it parses what it sends.

Every request that was sent gets exactly one answer: the server's, or an error for its id when the
network fails, a timeout runs out, or the answer is unusable. Only failures to connect are retried
(the server never saw the request), so a tool call never runs twice. Shutdown is bounded and
DELETEs the session.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx

from regogate.proxy.relay._codec import encode
from regogate.proxy.relay._framing import Oversize, PeerClosed, sniff_id
from regogate.proxy.relay._http_bodies import one_line, read_error_answer
from regogate.proxy.relay._http_handoff import Handoff, Post
from regogate.proxy.relay._http_listen import ServerStream, resume
from regogate.proxy.relay._http_session import (
    SESSION_ENDED,
    SESSION_HEADER,
    UPSTREAM_UNAVAILABLE,
    HttpFailure,
    HttpSession,
    is_modern_message,
)
from regogate.proxy.relay._http_target import HttpTarget
from regogate.proxy.relay._http_transport import Reply
from regogate.proxy.relay._pipes import Deliver
from regogate.proxy.relay._sse import SseDecoder
from regogate.proxy.relay._wire import UPSTREAM_GONE, UPSTREAM_MALFORMED, Key, error_line, id_key

logger = logging.getLogger(__name__)

MAX_CONCURRENT_POSTS = 64
"""Requests in flight at once; beyond it the relay's writer waits (backpressure, not a queue)."""
END_TIMEOUT = 1.0
"""After the server ends the session, how long open requests get to post their error answers."""


class HttpUpstream:
    """A Streamable HTTP MCP server; ``send`` takes client lines, ``receive`` yields server lines."""

    def __init__(self, http: HttpSession, tg: anyio.abc.TaskGroup) -> None:
        self.target = http.target
        self._http = http
        self._tg = tg
        self._out = Handoff(http)
        self._posts: dict[Key, Post] = {}
        self._slots = anyio.Semaphore(MAX_CONCURRENT_POSTS, fast_acquire=True)
        self._drained: anyio.Event | None = None  # made only when the end waits for open requests
        self._handshake: anyio.Event | None = None
        self._listening = False
        self._server_stream = ServerStream(
            http,
            on_message=self._server_message,
            on_session_over=self._session_over,
            live=lambda: not self._closed and self._ended is None,
        )
        self._closed = False
        self._ended: str | None = None  # why the upstream is over
        self.status = 0
        """0 after a normal end; 1 when the server ended the session."""

    @classmethod
    @asynccontextmanager
    async def connect(cls, target: HttpTarget) -> AsyncIterator[HttpUpstream]:
        """An upstream for ``target``; nothing is sent until the first line. DELETEs the session on exit."""
        async with HttpSession.connect(target) as http, anyio.create_task_group() as tg:
            upstream = cls(http, tg)
            try:
                yield upstream
            finally:
                await upstream.stop()
                tg.cancel_scope.cancel()
                upstream._out.close_reading()

    @property
    def session_id(self) -> str | None:
        """The server's ``Mcp-Session-Id``, while a session is open."""
        return self._http.session_id

    # --- the relay's side -----------------------------------------------------------------

    async def receive(self) -> bytes | Oversize | None:
        """The next server message as one line; ``None`` once the upstream is over (attached: only that)."""
        return await self._out.receive()

    def attach(self, deliver: Deliver) -> None:
        """Hand every server message to ``deliver`` (the relay's own reading of it) instead of ``receive``."""
        self._out.attach(deliver)

    async def send(self, line: bytes) -> None:
        """POST one client message; a request's answer arrives later through ``receive`` (or the attached relay).

        Raises:
            PeerClosed: the upstream is over (closed, or the server ended the session).
        """
        if self._closed or self._ended:
            raise PeerClosed
        _, message = one_line(line)
        if not isinstance(message, dict):
            logger.warning("not sending a message that is not a JSON object")
            return
        await self._send(line, message, carry=False)

    async def send_parsed(self, line: bytes, message: dict[str, object], *, carry: bool) -> None:
        """POST one message the relay already parsed (``line`` is its canonical encoding).

        ``carry``: a request's whole exchange runs in the caller's task, its answer handed on before this returns.

        Raises:
            PeerClosed: the upstream is over (closed, or the server ended the session).
        """
        if self._closed or self._ended:
            raise PeerClosed
        await self._send(line, message, carry=carry)

    async def _send(self, line: bytes, message: dict[str, object], *, carry: bool) -> None:
        method = message.get("method")
        if method == "notifications/cancelled" and self._cancel(message):
            return
        if isinstance(method, str) and "id" in message:
            await self._start_request(message, method, line, carry=carry)
        else:
            await self._post_unanswered(line, self._http.headers(message))

    async def aclose(self) -> None:
        """The client sent its last message."""
        self._closed = True

    async def stop(self) -> int:
        """End the session: stop in-flight POSTs and the GET stream, DELETE the session (bounded)."""
        self._closed = True
        self._out.stop()
        for post in list(self._posts.values()):
            post.silent = True
            post.scope.cancel()
        self._server_stream.stop()
        if self._ended is None:
            await self._http.delete()
        self._out.close()
        return self.status

    # --- requests ---------------------------------------------------------------------------

    async def _start_request(self, message: dict[str, object], method: str, line: bytes, *, carry: bool) -> None:
        request_id = message["id"]
        key = id_key(request_id)
        if key is None or not isinstance(request_id, str | int):
            logger.warning("not sending a request whose id is not a string or an integer")
            return
        if key in self._posts:  # the relay refuses duplicates; never let two answers race for one id
            await self._out.push(error_line(request_id, UPSTREAM_MALFORMED, "request id is already in flight"))
            return
        post = Post(request_id, method, modern=is_modern_message(message))
        headers = self._http.headers(message)
        try:
            self._slots.acquire_nowait()  # no pass of the event loop while a slot is free
        except anyio.WouldBlock:
            await self._slots.acquire()
        self._posts[key] = post
        handshake = None
        if method == "initialize":
            self._http.restart()
            handshake = self._handshake = anyio.Event()
        elif carry:
            await self._request(key, post, line, headers)
            return
        self._tg.start_soon(self._request, key, post, line, headers)
        if handshake is not None:
            await handshake.wait()  # a later message needs the session id this answer brings

    async def _request(self, key: Key, post: Post, line: bytes, headers: dict[str, str]) -> None:
        try:
            failure = await self._exchange(post, line, headers)
            if not (post.answered or post.silent):
                if failure is None:
                    reason = self._ended or "upstream answered nothing for this request"
                    failure = HttpFailure(SESSION_ENDED if self._ended else UPSTREAM_GONE, reason)
                logger.warning("answering request %r with an error: %s", post.request_id, failure.message)
                await self._out.push(error_line(post.request_id, failure.code, failure.message))
        finally:
            self._posts.pop(key, None)
            self._slots.release()
            if self._handshake is not None and post.method == "initialize":
                self._handshake.set()
            if not self._posts and self._drained is not None:
                self._drained.set()

    async def _exchange(self, post: Post, line: bytes, headers: dict[str, str]) -> HttpFailure | None:
        """POST one request and pass its answer on; what went wrong, if anything."""
        body: bytes | None = None
        try:
            with post.scope:
                outcome = await self._post_request(post, line, headers)
                if isinstance(outcome, SseDecoder):
                    await self._resume(post, outcome)
                else:
                    body = outcome
            if body is not None:  # handed on outside the scope a cancel may end: never half a line to the client
                await self._out.message(post, body, inside=False)
        except HttpFailure as exc:
            return exc
        except Exception as exc:  # boundary: whatever breaks, the request gets an answer
            logger.error("request %r to the upstream failed: %s", post.request_id, self._http.describe(exc))
            return HttpFailure(UPSTREAM_UNAVAILABLE, "upstream request failed")
        return None

    async def _post_request(self, post: Post, line: bytes, headers: dict[str, str]) -> bytes | SseDecoder | None:
        """POST ``line``: a JSON answer's body, still to be handed on; or the answer stream's decoder if it ended
        unanswered after the server gave event ids; else ``None``."""
        async with self._http.open("POST", line, headers) as response:
            if not post.modern:
                self._http.note_session(response)
            if post.method == "initialize" and self._handshake is not None:
                self._handshake.set()
            status = response.status_code
            if status == 404 and SESSION_HEADER in headers:
                await self._session_over()
                raise HttpFailure(SESSION_ENDED, self._ended or "upstream session ended")
            if status == 202:
                raise HttpFailure(UPSTREAM_MALFORMED, "upstream accepted the request without answering it")
            if status >= 300:
                await self._error_status(post, response)
                return None
            kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
            if kind == "application/json":
                return await self._json_answer(response)
            if kind == "text/event-stream":
                return await self._event_answer(post, response)
            raise HttpFailure(UPSTREAM_MALFORMED, f"upstream answered with content type {kind or 'none'!r}")

    async def _json_answer(self, response: Reply) -> bytes:
        body = await response.read_body(self.target.max_message)
        if body is None:
            raise HttpFailure(UPSTREAM_MALFORMED, "upstream reply too large")
        return body

    async def _event_answer(self, post: Post, response: Reply) -> SseDecoder | None:
        """Pass on the answer stream's events; its decoder if it ended unanswered and can be resumed."""
        decoder = SseDecoder(max_event=self.target.max_message)
        try:
            await self._answer_events(post, response, decoder)
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            if not self._resumable(post, decoder):
                raise
            logger.info("answer stream of request %r broke: %s", post.request_id, self._http.describe(exc))
        if post.answered:
            return None
        if not self._resumable(post, decoder):
            raise HttpFailure(UPSTREAM_GONE, "upstream closed the answer stream before answering")
        return decoder

    async def _answer_events(self, post: Post, response: Reply, decoder: SseDecoder) -> None:
        """Hand on the events of ``post``'s answer stream until its answer (or the stream's end)."""
        async for chunk in response.aiter_bytes():
            for event in decoder.feed(chunk):
                if event.event != "message" or not event.data:  # a priming event (id only) carries nothing
                    continue
                if isinstance(event.data, Oversize):
                    if sniff_id(event.data.head) in (post.request_id, None):
                        raise HttpFailure(UPSTREAM_MALFORMED, "upstream reply too large")
                    await self._out.push(event.data)
                    continue
                await self._out.message(post, event.data, inside=True)
                if post.answered:
                    return

    def _resumable(self, post: Post, decoder: SseDecoder) -> bool:
        """The server numbered the stream's events and a session exists: a GET with Last-Event-ID may resume it."""
        return decoder.last_id is not None and not post.modern and self._http.session_id is not None

    async def _resume(self, post: Post, decoder: SseDecoder) -> None:
        """Resume ``post``'s broken answer stream; it is never re-sent.

        Raises:
            HttpFailure: no attempt brought the answer (or the server ended the session).
        """

        async def answered(response: Reply) -> bool:
            await self._answer_events(post, response, decoder)
            return post.answered

        live = lambda: not self._closed and self._ended is None  # noqa: E731
        if not await resume(self._http, decoder, answered, live=live, session_over=self._session_over):
            if self._ended is not None:
                raise HttpFailure(SESSION_ENDED, self._ended)
            raise HttpFailure(UPSTREAM_GONE, "upstream answer stream broke and could not be resumed")

    async def _error_status(self, post: Post, response: Reply) -> None:
        """Pass on a JSON-RPC error the server sent with an HTTP error status, else make one."""
        message = await read_error_answer(response, post.request_id)
        if message is not None:
            post.answered = True
            await self._out.push(encode(message))
            return
        status = response.status_code
        hint = " (redirects are not followed)" if 300 <= status < 400 else ""
        raise HttpFailure(UPSTREAM_UNAVAILABLE, f"upstream answered HTTP {status}{hint}")

    def _cancel(self, message: dict[str, object]) -> bool:
        """A client cancel; True when it must not be POSTed (2026-07-28: cancelling is closing the stream)."""
        params = message.get("params")
        key = id_key(params.get("requestId")) if isinstance(params, dict) else None
        post = self._posts.get(key) if key is not None else None
        if post is None:
            return False
        post.silent = True  # the server owes no answer now; one that still comes is passed on
        if not post.modern:
            return False
        post.scope.cancel()
        return True

    # --- messages without an answer ------------------------------------------------------------

    async def _post_unanswered(self, line: bytes, headers: dict[str, str]) -> None:
        """POST a notification or an answer to a server request; the server owes nothing back."""
        try:
            async with self._http.open("POST", line, headers) as response:
                status = response.status_code
                if status == 404 and SESSION_HEADER in headers:
                    await self._session_over()
                elif status >= 300:
                    logger.warning("upstream refused a notification or answer: HTTP %d", status)
        except HttpFailure as exc:
            logger.warning("could not deliver a notification or answer: %s", exc.message)
            return
        except Exception as exc:  # boundary: a lost notification must not end the session
            logger.error("could not deliver a notification or answer: %s", self._http.describe(exc))
            return
        if self._http.session_id is not None and not self._listening and self._ended is None:
            self._listening = True
            self._tg.start_soon(self._server_stream.run)

    async def _server_message(self, data: bytes | Oversize) -> None:
        """A message from the GET stream: it answers no POST of ours."""
        if isinstance(data, Oversize):
            await self._out.push(data)
        else:
            await self._out.message(None, data, inside=True)

    # --- the end -------------------------------------------------------------------------------

    async def _session_over(self) -> None:
        """The server ended the session: answer every open request, then end like an exited server."""
        if self._ended is not None:
            return
        self._ended = "upstream session ended by the server (HTTP 404)"
        self.status = 1
        logger.warning("%s", self._ended)
        for post in list(self._posts.values()):
            post.scope.cancel()
        self._server_stream.stop()
        self._tg.start_soon(self._close_after_answers)

    async def _close_after_answers(self) -> None:
        if self._posts:
            self._drained = anyio.Event()
            with anyio.move_on_after(END_TIMEOUT):
                await self._drained.wait()
        self._out.close()
