"""The gateway's live sessions: unguessable ids, a cap, idle sessions closed, a drain at shutdown."""

from __future__ import annotations

import logging
import secrets
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
        return session if session is not None and not session.link.ended else None

    async def create(self, principal: Mapping[str, object]) -> GatewaySession:
        """Start a session (its upstream runs when this returns).

        Raises:
            PoolClosed: the cap is reached or the gateway is draining.
            ConfigError: the upstream command cannot be started.
        """
        if self.draining:
            raise PoolClosed("the gateway is shutting down")
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

    async def _run(
        self, session: GatewaySession, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await session.run(task_status=task_status)
        finally:
            self._sessions.pop(session.id, None)
        logger.info("session closed (%d open)", len(self._sessions))

    async def close(self, session: GatewaySession) -> None:
        """End one session and wait (bounded) until its upstream is gone."""
        self._sessions.pop(session.id, None)
        session.close()
        with anyio.move_on_after(CLOSE_TIMEOUT):
            await session.ended.wait()

    async def reap_idle(self) -> None:
        """Close sessions idle longer than ``idle_timeout``, for ever."""
        interval = min(REAP_INTERVAL_MAX, max(self.idle_timeout / 4, 0.05))
        while True:
            await anyio.sleep(interval)
            now = anyio.current_time()
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
