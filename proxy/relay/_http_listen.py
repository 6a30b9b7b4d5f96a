"""GET streams of a Streamable HTTP session: the server's own messages outside any answer, and broken answers resumed.

``ServerStream`` opens once the session has an id, resumes with ``Last-Event-ID`` after an
interruption and waits the server's ``retry`` (capped) between attempts. A 405 means the server
offers no such stream; a 404 means the server ended the session. After a few failures in a row the
session goes on without it: server-initiated messages then arrive only inside answers.

``resume`` picks up an answer stream (a POST's) that ended before its answer, after the server
numbered its events, with GET and ``Last-Event-ID`` as the spec says; attempts are bounded and the
request itself is never sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
import httpx

from regogate.proxy.relay._framing import Oversize
from regogate.proxy.relay._http_session import HttpFailure, HttpSession
from regogate.proxy.relay._http_transport import Reply
from regogate.proxy.relay._sse import SseDecoder

logger = logging.getLogger(__name__)

GET_MAX_FAILURES = 3
"""Consecutive failed attempts to (re)open the GET stream before living without it."""
GET_RETRY_DELAY = 1.0
"""Pause before reopening the GET stream when the server named no ``retry``."""
GET_MAX_RETRY_DELAY = 30.0
"""Cap on a server-chosen ``retry``."""
RESUME_ATTEMPTS = 3
"""Consecutive GETs with ``Last-Event-ID`` that bring no new event before a broken answer stream is given up."""
RESUME_MAX = 10
"""Resumptions of one answer stream in all, even while each brings new events."""
RESUME_DELAY = 0.5
"""Pause before resuming an answer stream when the server named no ``retry``."""
EVENT_STREAM = "text/event-stream"


class ServerStream:
    """Carries the GET stream's messages to ``on_message`` while ``live()`` holds; ``stop`` ends it."""

    def __init__(
        self,
        http: HttpSession,
        *,
        on_message: Callable[[bytes | Oversize], Awaitable[None]],
        on_session_over: Callable[[], Awaitable[None]],
        live: Callable[[], bool],
    ) -> None:
        self._http = http
        self._on_message = on_message
        self._on_session_over = on_session_over
        self._live = live
        self._scope = anyio.CancelScope()

    def stop(self) -> None:
        """End the stream now (or before it starts)."""
        self._scope.cancel()

    async def run(self) -> None:
        """Listen until stopped, the session ends, or the stream keeps failing; never raises."""
        try:
            with self._scope:
                await self._loop()
        except Exception as exc:  # boundary: without the GET stream the session still works
            logger.error("GET stream failed: %s", self._http.describe(exc))

    async def _loop(self) -> None:
        decoder = SseDecoder(max_event=self._http.target.max_message)
        failures = 0
        while self._live() and failures < GET_MAX_FAILURES:
            headers = {**self._http.session_headers(), "accept": EVENT_STREAM}
            if decoder.last_id is not None:
                headers["last-event-id"] = decoder.last_id
            try:
                async with self._http.open("GET", None, headers, idle=True) as response:
                    if response.status_code == 405:
                        logger.info("the server offers no GET stream")
                        return
                    if response.status_code == 404:
                        await self._on_session_over()
                        return
                    kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
                    if response.status_code != 200 or kind != EVENT_STREAM:
                        failures += 1
                        logger.info("GET stream refused: HTTP %d", response.status_code)
                    else:
                        failures = 0
                        async for chunk in response.aiter_bytes():
                            for event in decoder.feed(chunk):
                                if event.event == "message" and event.data:
                                    await self._on_message(event.data)
            except (HttpFailure, httpx.HTTPError) as exc:
                failures += 1
                detail = exc.message if isinstance(exc, HttpFailure) else self._http.describe(exc)
                logger.info("GET stream interrupted: %s", detail)
            delay = decoder.retry / 1000 if decoder.retry is not None else GET_RETRY_DELAY
            await anyio.sleep(min(delay, GET_MAX_RETRY_DELAY))
        if failures >= GET_MAX_FAILURES:
            logger.warning("GET stream unavailable; server-initiated messages arrive only with answers")


async def resume(
    http: HttpSession,
    decoder: SseDecoder,
    answered: Callable[[Reply], Awaitable[bool]],
    *,
    live: Callable[[], bool],
    session_over: Callable[[], Awaitable[None]],
) -> bool:
    """GET the stream after ``decoder.last_id`` until ``answered(response)`` says the answer came; False if never."""
    failures = 0
    for _ in range(RESUME_MAX):
        if failures >= RESUME_ATTEMPTS or not live():
            return False
        delay = decoder.retry / 1000 if decoder.retry is not None else RESUME_DELAY
        await anyio.sleep(min(delay, GET_MAX_RETRY_DELAY))
        seen = decoder.last_id
        headers = {**http.session_headers(), "accept": EVENT_STREAM, "last-event-id": str(seen)}
        try:
            async with http.open("GET", None, headers) as response:
                kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
                if response.status_code == 404:
                    await session_over()
                elif response.status_code == 200 and kind == EVENT_STREAM:
                    if await answered(response):
                        return True
                else:
                    logger.info("resuming an answer stream: HTTP %d", response.status_code)
        except HttpFailure as exc:
            logger.info("resuming an answer stream failed: %s", exc.message)
        failures = 0 if decoder.last_id != seen else failures + 1
    return False
