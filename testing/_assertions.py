"""Assertions on what regogate decided about one tool call, and the audit entries of that call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.types import CallToolResult

    from regogate.testing._session import GatedSession

__all__ = ["assert_allowed", "assert_denied", "audit_entries", "decision_of"]

#: Where regogate puts the rule and decision id of a denial in the tool result.
DECISION_META = "regogate/decision"


def decision_of(result: CallToolResult) -> dict[str, Any] | None:
    """``{"rule": ..., "decision_id": ...}`` when regogate denied the call, else None."""
    meta = result.meta or {}
    decision = meta.get(DECISION_META)
    return decision if isinstance(decision, dict) else None


def _text(result: CallToolResult) -> str:
    return "\n".join(str(getattr(part, "text", "")) for part in result.content)


def assert_denied(result: CallToolResult, *, rule: str | None = None, message: str | None = None) -> None:
    """Assert regogate denied the call (by ``rule``, with ``message`` in its text, when given).

    Raises:
        AssertionError: the call was allowed, or denied for another rule or with another message.
    """
    decision = decision_of(result)
    assert result.is_error and decision is not None, f"expected a denial, the call was allowed: {_text(result)!r}"
    if rule is not None:
        assert decision.get("rule") == rule, f"denied by {decision.get('rule')!r}, expected {rule!r}: {_text(result)!r}"
    if message is not None:
        assert message in _text(result), f"denial text {_text(result)!r} does not contain {message!r}"


def assert_allowed(result: CallToolResult) -> None:
    """Assert regogate let the call through (the server may still have answered with an error).

    Raises:
        AssertionError: regogate denied it.
    """
    decision = decision_of(result)
    assert decision is None, f"expected the call to pass, denied by {decision.get('rule')!r}: {_text(result)!r}"


def audit_entries(session: GatedSession, result: CallToolResult) -> list[dict[str, Any]]:
    """The audit-log events of the call that returned ``result`` (its decision, then its limit outcome)."""
    return session.audit_entries(result)
