"""What the relay asks before a tools/call goes upstream, and tells after it comes back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

Elicit = Callable[[dict[str, object], float], Awaitable[dict[str, object] | None]]
"""Ask the client's user through ``elicitation/create``: params and a deadline in seconds in, the
client's ``result`` out, or ``None`` when it errs, is cancelled or does not answer in time."""


@dataclass(frozen=True)
class CallContext:
    """One ``tools/call`` as the relay saw it, before it goes upstream."""

    request_id: str | int
    tool_name: str
    arguments: dict[str, object]
    """``{}`` when the request has none."""
    protocol_version: str | None
    """Per-request ``_meta["io.modelcontextprotocol/protocolVersion"]``, else the negotiated version."""
    client_info: dict[str, object] = field(default_factory=dict)
    """``clientInfo`` from ``initialize`` (or the per-request ``_meta`` key), ``{}`` if none."""
    tool: dict[str, object] | None = None
    """The tool's entry from the upstream's ``tools/list``, ``None`` if unknown."""
    meta: dict[str, object] = field(default_factory=dict)
    """The request's ``params._meta``, ``{}`` if none."""
    elicit: Elicit | None = None
    """How to ask the client's user, when the client declared the ``elicitation`` capability (form mode)."""


@dataclass(frozen=True)
class Verdict:
    """The gateway's answer for one call."""

    allowed: bool
    message: str
    """Denial message, without the relay's prefix."""
    rule: str | None
    decision_id: str
    ticket: object | None = None
    """Opaque to the relay; handed back in ``Gateway.settle``. ``None``: nothing to settle, so
    ``settle`` is not called for this call (an allowed call that reserved nothing)."""


class Gateway(Protocol):
    """Policy hooks the relay awaits; implementations fail closed and never raise."""

    async def check_call(self, call: CallContext) -> Verdict:
        """Decide one call; a fault inside must come back as a denial."""
        ...

    async def settle(self, verdict: Verdict, *, succeeded: bool) -> None:
        """Report how an allowed call that holds a ticket ended.

        ``succeeded`` is false only on evidence that the call did not take effect: a
        JSON-RPC error, ``result.isError`` true, a result that is not final
        (``resultType`` other than ``complete``), a call withdrawn by the client before
        it was forwarded, or a write upstream that failed. A forwarded call that was
        cancelled, never answered (the server died, the session ended) or answered with
        something malformed counts as succeeded: the server may have run it.
        """
        ...

    async def hidden_tools(self, tools: list[dict[str, object]], *, last_page: bool = True) -> set[str]:
        """Names to drop from a ``tools/list`` response.

        ``last_page``: the response has no ``nextCursor``, so a listing the client paged through ends here.
        """
        ...
