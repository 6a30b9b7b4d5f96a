"""Tools a policy names that the server does not offer: a typo there silently never matches.

``unknown_tools`` compares a policy with a server's tool names and says, for each miss, where the
policy names it and which offered name is closest. ``OfferedToolsCheck`` wraps a gateway so the
running proxy does the same after each complete ``tools/list`` and each reload (stderr and audit).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable

from regogate.converters import Policy
from regogate.core import WILDCARD
from regogate.proxy.policy._audit import AuditLog
from regogate.proxy.relay import CallContext, Gateway, Verdict

__all__ = ["OfferedToolsCheck", "unknown_tools"]

log = logging.getLogger(__name__)


def _did_you_mean(name: str, offered: list[str]) -> str:
    close = difflib.get_close_matches(name, offered, n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def unknown_tools(policy: Policy, offered: Iterable[str]) -> list[str]:
    """One ``file:line: ...`` warning per tool name under ``tools`` or ``hide`` the server does not offer."""
    names = sorted(set(offered))
    warnings: list[tuple[int, str]] = []
    for tool in policy.tools:
        if tool.name != WILDCARD and tool.name not in names:
            warnings.append(
                (
                    tool.mark.line,
                    f'{policy.source}:{tool.mark.line}: tools: "{tool.name}" is not a tool this server offers'
                    + _did_you_mean(tool.name, names),
                )
            )
    line = policy.hide_mark.line if policy.hide_mark else 0
    for name in policy.hide:
        if name != WILDCARD and name not in names:
            text = f'{policy.source}:{line}: hide: "{name}" is not a tool this server offers'
            warnings.append((line, text + _did_you_mean(name, names)))
    return [text for _, text in sorted(warnings)]


class OfferedToolsCheck:
    """A ``Gateway`` that checks the policy's tool names against the server's tools.

    The check runs when the client has paged through a whole ``tools/list`` (every page it fetched,
    up to one without ``nextCursor``) and that listing differs from the last one, and again after
    each policy reload against the last complete listing. Warnings go to stderr and the audit log.
    """

    def __init__(self, inner: Gateway, policy: Policy | None, audit: AuditLog) -> None:
        self._inner = inner
        self.policy = policy
        """The policy in force; replaced by ``policy_loaded`` (None for hand-written Rego: nothing to check)."""
        self._audit = audit
        self._listing: set[str] = set()  # names on the pages of the listing in progress
        self._offered: frozenset[str] | None = None  # the last complete listing

    async def check_call(self, call: CallContext) -> Verdict:
        """See ``Gateway.check_call``."""
        return await self._inner.check_call(call)

    async def settle(self, verdict: Verdict, *, succeeded: bool) -> None:
        """See ``Gateway.settle``."""
        await self._inner.settle(verdict, succeeded=succeeded)

    async def hidden_tools(self, tools: list[dict[str, object]], *, last_page: bool = True) -> set[str]:
        """See ``Gateway.hidden_tools``; the last page of a listing also checks the policy's names."""
        self._listing.update(str(t.get("name")) for t in tools)
        if last_page:
            offered, self._listing = frozenset(self._listing), set()
            if offered != self._offered:
                self._offered = offered
                self._check("tools/list")
        return await self._inner.hidden_tools(tools, last_page=last_page)

    def policy_loaded(self, policy: Policy | None) -> None:
        """A reload put ``policy`` in force: check it against the last complete listing, if any."""
        self.policy = policy
        if self._offered is not None:
            self._check("reload")

    def _check(self, after: str) -> None:
        if self.policy is None or self._offered is None:
            return
        warnings = unknown_tools(self.policy, self._offered)
        for warning in warnings:
            log.warning("%s", warning)
        if warnings:
            self._audit.write("unknown_tools", warnings=warnings, offered=len(self._offered), after=after)
