"""The relay's calls across the Gateway seam: each bounded in time, and a fault never lets a call through.

A gateway that raises or overruns gives a denial (``check``), a logged error (``settle``) or a page
with every tool hidden (``hidden``); the relay itself never sees the exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import anyio

from regogate.core import random_id
from regogate.proxy.relay._gateway import CallContext, Elicit, Gateway, Verdict

logger = logging.getLogger(__name__)

DECISION_TIMEOUT = 10.0
"""Outer bound on one gateway decision; the gateway's own OPA timeout should fire well before."""

SETTLE_TIMEOUT = 5.0
"""Bound on reporting an outcome (audit, rate-limit rollback); it runs in its own task."""

HIDDEN_TOOLS_TIMEOUT = 5.0
"""Bound on the tools/list filter; on timeout every tool on that page is hidden (fail closed)."""

Elicitor = Callable[[anyio.CancelScope], Elicit]
"""Builds a call's ``elicit`` from the cancel scope that carries its decision deadline."""


class BoundedGateway:
    """A ``Gateway`` seen through deadlines and fail-closed fallbacks."""

    def __init__(self, gateway: Gateway, *, decision_timeout: float = DECISION_TIMEOUT) -> None:
        self._gateway = gateway
        self.decision_timeout = decision_timeout

    async def check(self, call: CallContext, elicitor: Elicitor | None = None) -> Verdict:
        """Decide one call; ``elicitor`` is given when the call's user may be asked (elicitation)."""
        try:
            # A bare deadline scope: fail_after's generator wrapper costs more than the scope itself.
            with anyio.CancelScope(deadline=anyio.current_time() + self.decision_timeout) as scope:
                if elicitor is not None:
                    call = replace(call, elicit=elicitor(scope))
                return await self._gateway.check_call(call)
            raise TimeoutError  # the deadline passed
        except Exception as exc:  # boundary: a gateway fault is a denial, never a forward
            logger.error("gateway failed on %r: %r; denying", call.tool_name, exc)
            return Verdict(False, "policy decision failed", "regogate/gateway_error", random_id())

    async def settle(self, verdict: Verdict, succeeded: bool) -> None:
        """Report how an allowed call ended; a failure is logged and goes no further."""
        if verdict.ticket is None:  # nothing reserved, nothing to report
            return
        try:
            with anyio.fail_after(SETTLE_TIMEOUT):
                await self._gateway.settle(verdict, succeeded=succeeded)
        except Exception as exc:  # boundary: an outcome report must not end the session
            logger.error("gateway settle failed for decision %s: %r", verdict.decision_id, exc)

    async def hidden(self, entries: list[dict[str, object]], last_page: bool = True) -> set[str]:
        """Names to drop from a tools/list page; every name on it when the gateway cannot say."""
        try:
            with anyio.fail_after(HIDDEN_TOOLS_TIMEOUT):
                return await self._gateway.hidden_tools(entries, last_page=last_page)
        except Exception as exc:  # boundary: cannot filter, so hide the whole page
            logger.error("gateway hidden_tools failed: %r; hiding every tool on this page", exc)
            return {str(e["name"]) for e in entries}
