"""regogate's own requests to the client (``elicitation/create`` for approvals), in an id space of their own.

The ids are ``regogate-ask-<random>``: a client's answer with such an id goes to the waiting asker and
never upstream; an answer to an id regogate never sent (or has stopped waiting for) is dropped. While a
person is being asked, a call that carried a progress token gets progress notifications, so the client
does not time out; a cancel of that call withdraws the question.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import anyio

from regogate.core import random_id
from regogate.proxy.relay._codec import encode
from regogate.proxy.relay._gateway import Elicit

__all__ = ["ASK_ID_PREFIX", "ClientAsker"]

logger = logging.getLogger(__name__)

ASK_ID_PREFIX: Final = "regogate-ask-"
#: How often a waiting call gets a progress notification (clients often time out after 60 s of silence).
PROGRESS_INTERVAL: Final = 10.0
#: How often a wait checks whether the call it is for was cancelled.
WITHDRAW_POLL: Final = 0.25

Send = Callable[[bytes], Awaitable[None]]


class _Waiting:
    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.answer: dict[str, object] | None = None


class ClientAsker:
    """Sends regogate's requests to the client and matches the client's answers to them."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._waiting: dict[str, _Waiting] = {}

    def claims(self, answer_id: object) -> bool:
        """Whether a client answer with this id is regogate's business (and must not go upstream)."""
        return isinstance(answer_id, str) and answer_id.startswith(ASK_ID_PREFIX)

    def deliver(self, message: dict[str, object]) -> None:
        """A client answer whose id ``claims``: hand it to its asker, or drop it if nobody waits for it."""
        waiting = self._waiting.get(str(message.get("id")))
        if waiting is None or waiting.done.is_set():
            logger.warning("dropped a client answer to a request regogate is not waiting for")
            return
        result = message.get("result")
        waiting.answer = result if isinstance(result, dict) else None
        waiting.done.set()

    async def ask(
        self,
        method: str,
        params: dict[str, object],
        deadline: float,
        *,
        progress_token: object = None,
        withdrawn: Callable[[], bool] = lambda: False,
    ) -> dict[str, object] | None:
        """Send one request and wait up to ``deadline`` seconds for its ``result``.

        ``None`` when the client answers with an error, does not answer in time, or the call this is for
        was cancelled (``withdrawn``); the client is then told to stop asking.
        """
        ask_id = f"{ASK_ID_PREFIX}{random_id()}"
        waiting = self._waiting[ask_id] = _Waiting()
        try:
            await self._send(encode({"jsonrpc": "2.0", "id": ask_id, "method": method, "params": params}))
            progress = 0
            next_progress = anyio.current_time() + PROGRESS_INTERVAL
            with anyio.move_on_after(deadline):
                while not waiting.done.is_set():
                    if withdrawn():
                        break
                    with anyio.move_on_after(WITHDRAW_POLL):
                        await waiting.done.wait()
                    if progress_token is not None and anyio.current_time() >= next_progress:
                        progress += 1
                        next_progress += PROGRESS_INTERVAL
                        await self._send(_progress(progress_token, progress))
            if not waiting.done.is_set():
                reason = "the call was cancelled" if withdrawn() else "no answer in time"
                await self._send(
                    encode(
                        {
                            "jsonrpc": "2.0",
                            "method": "notifications/cancelled",
                            "params": {"requestId": ask_id, "reason": reason},
                        }
                    )
                )
                return None
            return waiting.answer
        finally:
            del self._waiting[ask_id]

    def elicitor(
        self,
        deadline: anyio.CancelScope,
        *,
        grace: float,
        progress_token: object,
        withdrawn: Callable[[], bool],
    ) -> Elicit:
        """How the gateway asks one call's user; the call's decision ``deadline`` moves to the wait plus ``grace``."""

        async def elicit(params: dict[str, object], wait: float) -> dict[str, object] | None:
            deadline.deadline = max(deadline.deadline, anyio.current_time() + wait + grace)
            return await self.ask(
                "elicitation/create", params, wait, progress_token=progress_token, withdrawn=withdrawn
            )

        return elicit


def _progress(token: object, progress: int) -> bytes:
    return encode(
        {
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": token, "progress": progress, "message": "waiting for a person's approval"},
        }
    )
