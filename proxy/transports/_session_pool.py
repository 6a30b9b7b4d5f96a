"""The gateway's live sessions: unguessable ids, a cap, idle sessions closed, a drain at shutdown.

Besides the sessions clients name by ``Mcp-Session-Id``, the pool lends 2026-07-28 requests (which
have no session) an upstream of their own: ``borrow`` one whose principal is exactly the caller's,
idle, or a new one; ``give_back`` it once its one request is answered. One request at a time per
borrowed upstream, so ids, progress tokens and server messages of two requests never meet.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping

import anyio
import anyio.abc

from regogate.proxy.transports._gateway_session import GatewaySession

__all__ = ["PoolClosed", "SessionPool"]

logger = logging.getLogger(__name__)

SESSION_ID_BYTES = 32
"""256 random bits per session id (URL-safe base64, 43 visible ASCII characters)."""
REAP_INTERVAL_MAX = 5.0
"""Longest pause between two looks for idle sessions."""
CLOSE_TIMEOUT = 5.0
"""Bound on one session's wind-down (relay drain, then the upstream's stop sequence, about 2 s)."""

OpenSession = Callable[[str, Mapping[str, object]], GatewaySession]
"""Make a session (not yet started) for a new id and the caller's principal."""


class PoolClosed(Exception):
    """No new session: the pool is full or the gateway is shutting down; ``str`` says which."""


class SessionPool:
    """Sessions by id, run in the pool's task group."""

    def __init__(
        self, open_session: OpenSession, tg: anyio.abc.TaskGroup, *, max_sessions: int, idle_timeout: float
    ) -> None:
        self._open = open_session
        self._tg = tg
        self._sessions: dict[str, GatewaySession] = {}
        self._lent: set[str] = set()
        """Ids of the sessions lent to 2026-07-28 requests: never reachable by ``Mcp-Session-Id``."""
        self._idle_lent: dict[str, list[GatewaySession]] = {}
        """Lent sessions waiting for their next request, by the exact principal they decide for."""
        self._starting = 0
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.draining = False

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def busy(self) -> bool:
        """Some request is still waiting for its answer."""
        return any(s.link.busy for s in self._sessions.values())

    def get(self, session_id: str) -> GatewaySession | None:
        """The live session with this id, or ``None``."""
        session = self._sessions.get(session_id)
        if session is None or session.link.ended or session_id in self._lent:
            return None
        return session

    async def create(self, principal: Mapping[str, object]) -> GatewaySession:
        """Start a session (its upstream runs when this returns).

        Raises:
            PoolClosed: the cap is reached or the gateway is draining.
            ConfigError: the upstream command cannot be started.
        """
        if self.draining:
            raise PoolClosed("the gateway is shutting down")
        if len(self._sessions) + self._starting >= self.max_sessions and (spare := self._least_recent_idle()):
            await self.close(spare)  # an idle lent upstream makes room: it holds nothing a client waits for
        if len(self._sessions) + self._starting >= self.max_sessions:
            raise PoolClosed(f"too many sessions ({self.max_sessions}); close one or try again later")
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        session = self._open(session_id, principal)
        self._starting += 1
        try:
            await self._tg.start(self._run, session)
        finally:
            self._starting -= 1
        self._sessions[session_id] = session
        return session

    async def borrow(self, principal: Mapping[str, object]) -> GatewaySession:
        """An upstream for one 2026-07-28 request of ``principal``: an idle one of the same claims, or a new one.

        Raises:
            PoolClosed: the cap is reached or the gateway is draining.
            ConfigError: the upstream command cannot be started.
        """
        key = _claims_key(principal)
        idle = self._idle_lent.get(key, [])
        while idle:
            session = idle.pop()
            if not session.link.ended and session.id in self._sessions:
                session.touch()
                return session
        session = await self.create(principal)
        self._lent.add(session.id)
        return session

    def give_back(self, session: GatewaySession, *, reusable: bool) -> None:
        """The borrowed session's request is over: keep it for the next one, or close it (``reusable`` false:
        the client left before its answer, which the upstream may still be working on)."""
        if reusable and not session.link.ended and not session.link.busy and not self.draining:
            session.touch()
            self._idle_lent.setdefault(_claims_key(session.principal), []).append(session)
        else:
            self._tg.start_soon(self.close, session)

    async def _run(
        self, session: GatewaySession, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await session.run(task_status=task_status)
        finally:
            self._forget(session)
        logger.info("session closed (%d open)", len(self._sessions))

    async def close(self, session: GatewaySession) -> None:
        """End one session and wait (bounded) until its upstream is gone."""
        self._forget(session)
        session.close()
        with anyio.move_on_after(CLOSE_TIMEOUT):
            await session.ended.wait()

    def _least_recent_idle(self) -> GatewaySession | None:
        idle = [session for sessions in self._idle_lent.values() for session in sessions]
        return min(idle, key=lambda session: session.last_seen, default=None)

    def _forget(self, session: GatewaySession) -> None:
        self._sessions.pop(session.id, None)
        self._lent.discard(session.id)
        key = _claims_key(session.principal)
        idle = self._idle_lent.get(key)
        if idle is not None and session in idle:
            idle.remove(session)
            if not idle:
                del self._idle_lent[key]

    async def reap_idle(self) -> None:
        """Close sessions idle longer than ``idle_timeout``, for ever."""
        interval = min(REAP_INTERVAL_MAX, max(self.idle_timeout / 4, 0.05))
        while True:
            await anyio.sleep(interval)
            now = time.monotonic()
            for session in list(self._sessions.values()):
                if session.idle_for(now) > self.idle_timeout:
                    logger.info("closing a session idle for over %gs", self.idle_timeout)
                    self._tg.start_soon(self.close, session)

    async def drain(self, timeout: float) -> None:
        """Refuse new sessions, give requests in flight up to ``timeout`` to be answered, then close all."""
        self.draining = True
        with anyio.move_on_after(timeout):
            while self.busy:
                await anyio.sleep(0.05)
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for session in list(self._sessions.values()):
                    tg.start_soon(self.close, session)


def _claims_key(principal: Mapping[str, object]) -> str:
    """Every claim counts: a token with other claims for the same subject gets another upstream."""
    return json.dumps(principal, sort_keys=True, default=str, separators=(",", ":"))
