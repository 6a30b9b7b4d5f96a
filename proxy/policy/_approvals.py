"""Turns an approval obligation into a person's answer: in band through the client, or out of band.

In band, the client's user answers an ``elicitation/create`` form; out of band, the call is denied with
an approval id and the command a person runs (``regogate approvals approve ID``), after which the same
call (same server, tool and arguments digest) is admitted once. Either way the answer is recorded in
the approval store and in the audit log, and the caller decides the call again with ``input.approval``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from regogate.core import Clock
from regogate.proxy.approval import (
    Approval,
    ApprovalStore,
    MemoryApprovalStore,
    arguments_digest,
    arguments_preview,
    new_approval_id,
)
from regogate.proxy.policy._audit import AuditLog
from regogate.proxy.policy._decision import ApprovalObligation
from regogate.proxy.relay import CallContext

__all__ = ["ApprovalDesk", "Granted", "Withheld"]

log = logging.getLogger(__name__)

#: The form a client shows its user: approve yes/no and an optional reason.
APPROVAL_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "title": "Approve this call?", "description": "Yes lets the call run once."},
        "reason": {"type": "string", "title": "Reason (optional)"},
    },
    "required": ["approve"],
}


@dataclass(frozen=True)
class Granted:
    """A person approved the call: ``document`` becomes ``input.approval`` for the second decision."""

    approval: Approval
    document: dict[str, object]


@dataclass(frozen=True)
class Withheld:
    """No approval (yet): the call is denied with ``message``."""

    message: str
    approval_id: str | None


def _rfc3339(moment: float) -> str:
    # Not core.utc_second: an approval's moments are arbitrary, and its small cache serves the current second.
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _input_document(approval: Approval) -> dict[str, object]:
    return {
        "id": approval.id,
        "by": approval.decided_by,
        "via": approval.via,
        "at": _rfc3339(approval.decided_at or approval.created),
        "reason": approval.reason,
        "rule": approval.rule,
    }


class ApprovalDesk:
    """Obtains approvals for one server's calls; never raises for a person's answer, only for store faults."""

    def __init__(
        self, store: ApprovalStore, clock: Clock, audit: AuditLog, server_id: str, *, state_flag: str = ""
    ) -> None:
        """``state_flag`` is what a person adds to ``regogate approvals`` to reach this store (e.g. ``--state URL``)."""
        self._store = store
        self._clock = clock
        self._audit = audit
        self._server_id = server_id
        self._state_flag = state_flag

    async def obtain(
        self, call: CallContext, obligation: ApprovalObligation, decision_id: str, *, asked_by: str | None = None
    ) -> Granted | Withheld:
        """Find or ask for a person's approval of ``call``; ``asked_by`` is the caller's principal id.

        Raises:
            StateError: the approval store failed (the caller denies).
        """
        now = self._clock.now()
        digest = arguments_digest(call.arguments)
        used = await self._store.consume(self._server_id, call.tool_name, digest, now)
        if used is not None:
            self._record("used", used, decision_id)
            return Granted(used, _input_document(used))
        preview, size = arguments_preview(call.arguments)
        fresh = Approval(
            id=new_approval_id(),
            server_id=self._server_id,
            tool=call.tool_name,
            digest=digest,
            preview=preview,
            size=size,
            rule=obligation.rule,
            message=obligation.message,
            created=now,
            expires=now + obligation.timeout,
            timeout=obligation.timeout,
            asked_by=asked_by,
            client=client if isinstance(client := call.client_info.get("name"), str) else None,
        )
        asked = await self._store.request(fresh, now)
        if asked.id == fresh.id:
            self._record("requested", asked, decision_id)
        if call.elicit is not None:
            return await self._in_band(call, asked, decision_id)
        return self._out_of_band(asked, obligation)

    def _out_of_band(self, asked: Approval, obligation: ApprovalObligation) -> Withheld:
        if isinstance(self._store, MemoryApprovalStore):
            return Withheld(
                f"{obligation.message}. This client cannot ask its user, and regogate keeps state in memory "
                "(--state memory), so no one can approve it from outside: run regogate with a state file or "
                "Redis to approve calls with `regogate approvals approve`.",
                asked.id,
            )
        flag = f" {self._state_flag}" if self._state_flag else ""
        return Withheld(
            f"{obligation.message}. Approval {asked.id} is pending: a person runs "
            f"`regogate approvals approve {asked.id}{flag}` (or `regogate approvals deny {asked.id}{flag}`), "
            f"then the same call with the same arguments is admitted once within "
            f"{_duration(obligation.timeout)} of the approval. This request lapses at {_rfc3339(asked.expires)}.",
            asked.id,
        )

    async def _in_band(self, call: CallContext, asked: Approval, decision_id: str) -> Granted | Withheld:
        assert call.elicit is not None
        now = self._clock.now()
        params: dict[str, object] = {
            "mode": "form",
            "message": self._form_message(call, asked),
            "requestedSchema": APPROVAL_SCHEMA,
        }
        answer = await call.elicit(params, max(asked.expires - now, 0.0))
        approve, reason, how = _read_answer(answer)
        who = call.client_info.get("name")
        by = f"client user ({who})" if isinstance(who, str) else "client user"
        try:
            answered = await self._store.answer(
                asked.id, approve=approve, by=by, reason=reason, via="elicitation", now=self._clock.now()
            )
        except Exception as exc:  # answered meanwhile out of band, or lapsed: the store's record wins
            log.info("approval %s not answered in band: %s", asked.id, exc)
            return await self._after_race(call, asked, decision_id, how)
        self._record("approved" if approve else "denied", answered, decision_id, how=how)
        if not approve:
            return Withheld(f"{asked.message}. The user {how}; the call was not run.", asked.id)
        used = await self._store.consume(self._server_id, call.tool_name, asked.digest, self._clock.now())
        if used is None or used.id != asked.id:
            return Withheld(f"{asked.message}. The approval was used by another identical call.", asked.id)
        self._record("used", used, decision_id)
        return Granted(used, _input_document(used))

    async def _after_race(self, call: CallContext, asked: Approval, decision_id: str, how: str) -> Granted | Withheld:
        used = await self._store.consume(self._server_id, call.tool_name, asked.digest, self._clock.now())
        if used is not None:
            self._record("used", used, decision_id)
            return Granted(used, _input_document(used))
        self._record("lapsed", asked, decision_id, how=how)
        return Withheld(f"{asked.message}. The user {how}; no approval was given, the call was not run.", asked.id)

    def _form_message(self, call: CallContext, asked: Approval) -> str:
        shown = asked.preview
        return (
            f"An agent wants to call {call.tool_name!r} on server {self._server_id!r}.\n"
            f"Rule {asked.rule!r}: {asked.message}\n"
            f"Arguments ({asked.size} bytes):\n{shown}\n"
            f"Approval {asked.id}; answer within {_duration(asked.timeout)}."
        )

    def _record(self, event: str, approval: Approval, decision_id: str, **extra: object) -> None:
        self._audit.write(
            "approval",
            approval_id=approval.id,
            outcome=event,
            tool=approval.tool,
            rule=approval.rule,
            decided_by=approval.decided_by,
            decided_at=approval.decided_at,
            via=approval.via,
            reason=approval.reason,
            decision_id=decision_id,
            **extra,
        )


def _read_answer(answer: dict[str, object] | None) -> tuple[bool, str | None, str]:
    """``(approve, reason, what happened)`` from a client's elicitation result; anything odd is a no."""
    if answer is None:
        return False, None, "did not answer in time"
    action = answer.get("action")
    if action == "decline":
        return False, None, "declined"
    if action == "cancel":
        return False, None, "cancelled the request"
    content = answer.get("content")
    if action != "accept" or not isinstance(content, dict):
        return False, None, "sent an answer regogate could not read"
    approve = content.get("approve")
    reason = content.get("reason")
    reason = reason[:500] if isinstance(reason, str) and reason else None
    if approve is True:
        return True, reason, "approved"
    if approve is False:
        return False, reason, "said no"
    return False, None, f"sent an answer without a yes/no ({json.dumps(approve)[:40]})"
