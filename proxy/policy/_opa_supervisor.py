"""Keeps the embedded OPA alive: a dead OPA is restarted with backoff, and every restart is audited.

While OPA is down, calls are denied with ``opa_unreachable`` (the client finds no one listening);
the policy in force does not change, since the restart loads the same bundles. A policy reload that
lands meanwhile replaces the dead OPA itself and ends the restart attempts.
"""

from __future__ import annotations

import logging
from typing import Final

import anyio

from regogate.core import ConfigError
from regogate.proxy.policy._audit import AuditLog
from regogate.proxy.policy._embedded_opa import EmbeddedOpa

__all__ = ["RESTART_FIRST_DELAY", "RESTART_MAX_DELAY", "supervise_opa"]

log = logging.getLogger(__name__)

#: A crash is usually a one-off (OOM kill, a stray signal): the first restart comes quickly.
RESTART_FIRST_DELAY: Final = 0.1
#: Doubling stops here, so a persistently failing OPA costs one start attempt per this many seconds.
RESTART_MAX_DELAY: Final = 5.0


async def supervise_opa(sidecar: EmbeddedOpa, audit: AuditLog) -> None:
    """Watch the sidecar until cancelled; restart its OPA whenever it dies."""
    while True:
        pid, status = await sidecar.wait_exited()
        if sidecar.pid != pid:
            continue  # a reload replaced it on purpose; watch the new one
        log.error(
            "the embedded OPA (pid %d) exited with status %s; calls are denied (opa_unreachable) until it restarts",
            pid,
            status,
        )
        delay = RESTART_FIRST_DELAY
        attempt = 0
        while sidecar.pid == pid:
            attempt += 1
            await anyio.sleep(delay)
            if sidecar.pid != pid:
                break  # a policy reload started a new OPA meanwhile
            try:
                await sidecar.reload(sidecar.bundle_dirs)
            except ConfigError as exc:
                delay = min(delay * 2, RESTART_MAX_DELAY)
                log.error("restarting OPA failed (attempt %d, next in %.1f s): %s", attempt, delay, exc)
                audit.write("opa_restart", ok=False, attempt=attempt, exited_pid=pid, status=status, error=str(exc))
                continue
            log.warning("the embedded OPA is back (pid %d) after %d attempt(s)", sidecar.pid, attempt)
            audit.write("opa_restart", ok=True, attempt=attempt, exited_pid=pid, status=status, pid=sidecar.pid)
