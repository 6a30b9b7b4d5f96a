"""The contract every approval store keeps, and the store in this process's memory.

An approval is single-use: ``consume`` turns one approved approval into a used one atomically, so two
identical calls racing on one approval admit exactly one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from regogate.core import RegogateError
from regogate.proxy.approval._record import Approval

__all__ = ["ApprovalError", "ApprovalStore", "MemoryApprovalStore", "check_answerable"]


class ApprovalError(RegogateError):
    """An approval that cannot be answered: unknown id, already answered, or expired."""


def check_answerable(approval: Approval | None, approval_id: str, now: float) -> Approval:
    """Return ``approval`` if a person may still answer it.

    Raises:
        ApprovalError: it is unknown, already answered, used or expired.
    """
    if approval is None:
        raise ApprovalError(f"no approval {approval_id!r} (see `regogate approvals list`)")
    status = approval.effective_status(now)
    if status != "pending":
        raise ApprovalError(f"approval {approval_id} is {status}; only a pending approval can be answered")
    return approval


class ApprovalStore(Protocol):
    """Keeps approvals; every method may raise ``StateError`` when the store fails."""

    async def request(self, approval: Approval, now: float) -> Approval:
        """Record ``approval``, or return the live one (pending or approved) already asked for the same call."""
        ...

    async def answer(
        self, approval_id: str, *, approve: bool, by: str, reason: str | None, via: str, now: float
    ) -> Approval:
        """Record a person's answer to a pending approval.

        Raises:
            ApprovalError: the id is unknown, or the approval is no longer pending.
        """
        ...

    async def consume(self, server_id: str, tool: str, digest: str, now: float) -> Approval | None:
        """Use the approved, unexpired approval for this exact call, once; ``None`` when there is none."""
        ...

    async def get(self, approval_id: str) -> Approval | None:
        """The approval with this id, ``None`` if unknown."""
        ...

    async def list(self) -> list[Approval]:
        """Every approval the store keeps, oldest first."""
        ...

    async def aclose(self) -> None:
        """Release the store's resources."""
        ...


class MemoryApprovalStore:
    """Approvals in this process's memory: only in-band (elicitation) answers can reach them."""

    def __init__(self) -> None:
        self._approvals: dict[str, Approval] = {}

    def _live(self, server_id: str, tool: str, digest: str, now: float) -> Approval | None:
        for approval in self._approvals.values():
            same = (approval.server_id, approval.tool, approval.digest) == (server_id, tool, digest)
            if same and approval.effective_status(now) in ("pending", "approved"):
                return approval
        return None

    async def request(self, approval: Approval, now: float) -> Approval:
        existing = self._live(approval.server_id, approval.tool, approval.digest, now)
        if existing is not None:
            return existing
        self._approvals[approval.id] = approval
        return approval

    async def answer(
        self, approval_id: str, *, approve: bool, by: str, reason: str | None, via: str, now: float
    ) -> Approval:
        approval = check_answerable(self._approvals.get(approval_id), approval_id, now)
        answered = approval.answered(approve=approve, by=by, at=now, reason=reason, via=via)
        self._approvals[approval_id] = answered
        return answered

    async def consume(self, server_id: str, tool: str, digest: str, now: float) -> Approval | None:
        approval = self._live(server_id, tool, digest, now)
        if approval is None or approval.status != "approved":
            return None
        self._approvals[approval.id] = used = replace(approval, status="used")
        return used

    async def get(self, approval_id: str) -> Approval | None:
        return self._approvals.get(approval_id)

    async def list(self) -> list[Approval]:
        return sorted(self._approvals.values(), key=lambda a: a.created)

    async def aclose(self) -> None:
        return None
