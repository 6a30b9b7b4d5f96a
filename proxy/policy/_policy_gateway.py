"""The policy gateway: OPA decides each call, the rate-limit store counts it, the audit log records it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from regogate.converters import Policy
from regogate.core import WILDCARD, Clock, ConfigError, DecisionError, RegogateError, StateError, random_id
from regogate.proxy.policy._approvals import ApprovalDesk, Withheld
from regogate.proxy.policy._audit import AuditLog
from regogate.proxy.policy._decision import CallInput, ListInput, parse_decision
from regogate.proxy.policy._opa_client import OpaClient
from regogate.proxy.relay import CallContext, Gateway, Verdict
from regogate.proxy.state import RateLimitStore, Refused, Ticket, Window, counter_key

log = logging.getLogger(__name__)

FailMode = Literal["closed", "open"]
CounterReads = Mapping[str, tuple["CounterRead", ...]]
SwapOpa = Callable[[Callable[[], None]], Awaitable[None]]
"""Puts a new OPA in force and calls its argument at the instant new requests start going to it."""
DEFAULT_DECISION_PATH = "regogate/gate/decision"


@dataclass(frozen=True)
class CounterRead:
    """A counter a policy condition reads; its current value goes into ``input.state``."""

    scope: str
    counter: str
    window: Window


def counter_reads(policy: Policy | None) -> dict[str, tuple[CounterRead, ...]]:
    """For each tool (``*`` for every call), the counters its conditions read, with their windows."""
    if policy is None:  # hand-written Rego: the proxy knows no counters to read
        return {}
    windows: dict[tuple[str, str], Window] = {}
    for r in policy.rules:
        if r.counter is not None:
            windows[(r.scope, r.counter.name)] = r.counter.window
        if r.rate_limit is not None:  # the ``rate_limit: N/window`` shorthand counts ``_rate_<window>``
            windows[(r.scope, f"_rate_{r.rate_limit.window}")] = r.rate_limit.window
    reads: dict[str, set[tuple[str, str]]] = {}
    for rule in policy.rules:
        for condition in rule.conditions:
            # The limit condition needs no read: the reservation checks the value after adding the cost,
            # which is stricter (one store round trip per call instead of two).
            if condition.counter is not None and condition is not rule.limit_condition:
                if condition.counter not in windows:
                    scope, counter = condition.counter
                    raise ConfigError(
                        f"{policy.source}: tools.{rule.tool}: a condition reads counter {scope}.{counter}, "
                        "which no rule counts; declare it with a counter or rate_limit rule"
                    )
                reads.setdefault(rule.tool, set()).add(condition.counter)
    return {
        tool: tuple(CounterRead(scope, counter, windows[(scope, counter)]) for scope, counter in sorted(refs))
        for tool, refs in reads.items()
    }


@dataclass(frozen=True)
class GateSettings:
    """How the gateway decides: fixed at start-up, passed down."""

    server_id: str
    decision_path: str = DEFAULT_DECISION_PATH
    fail_mode: FailMode = "closed"
    state_fail_mode: FailMode = "closed"
    dry_run: bool = False
    principal: Mapping[str, object] = field(default_factory=dict)
    """Who is calling (``input.principal``): the same for every call of this process."""


@dataclass(frozen=True, slots=True)
class _Trace:
    """One call as its audit event names it: decision id, when deciding began, the call's own fields."""

    decision_id: str
    started: float
    fields: dict[str, object]


@dataclass(frozen=True)
class _Pending:
    """What ``settle`` needs to finish an allowed call."""

    ticket: Ticket | None
    tool: str
    decision_id: str


class PolicyGateway:
    """Implements the relay's ``Gateway``: fail closed, never raises."""

    def __init__(
        self,
        opa: OpaClient,
        store: RateLimitStore,
        clock: Clock,
        audit: AuditLog,
        settings: GateSettings,
        *,
        policy: Policy | None = None,
        approvals: ApprovalDesk | None = None,
        revisions: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        """``policy`` is the YAML policy OPA runs (``None`` for hand-written Rego); see ``load_policy``.

        ``revisions`` returns the bundle revisions OPA runs now; each decision event carries them.
        """
        self._revisions = revisions
        self._opa = opa
        self._store = store
        self._clock = clock
        self._audit = audit
        self.settings = settings
        self._counter_reads: CounterReads = counter_reads(policy)
        self._approvals = approvals

    async def reload(self, policy: Policy | None, swap_opa: SwapOpa) -> None:
        """Put ``policy`` in force together with the OPA that runs it, as one swap.

        ``swap_opa`` starts that OPA (``EmbeddedOpa.reload``) and calls back at the instant it takes
        new requests; the counters the policy reads change in that callback. A decision holds one OPA
        for its counter reads and its evaluation, so each call is decided wholly by the old policy or
        wholly by the new one. If ``swap_opa`` raises, nothing changed.

        Raises:
            ConfigError: a condition reads a counter that no rule counts (before anything changes).
        """
        reads = counter_reads(policy)

        def switch() -> None:
            self._counter_reads = reads

        await swap_opa(switch)

    async def _state(self, reads: CounterReads, tool: str, now: float) -> dict[str, dict[str, float]]:
        """Current values of the counters this tool's rules (and the wildcard's) read; none for other calls.

        Under ``state_fail_mode="open"`` an unreadable counter is left out, so conditions on it fail.
        """
        state: dict[str, dict[str, float]] = {}
        for read in (*reads.get(tool, ()), *reads.get(WILDCARD, ())):
            try:
                value = await self._store.current(
                    counter_key(self.settings.server_id, f"{read.scope}/{read.counter}"), read.window, now
                )
            except StateError as exc:
                if self.settings.state_fail_mode == "closed":
                    raise
                log.warning(
                    "state store failed reading %s/%s (%s); --state-fail-mode open", read.scope, read.counter, exc
                )
                continue
            state.setdefault(read.scope, {})[read.counter] = value
        return state

    async def _decide(
        self, call: CallContext, now: float, digest: str | None, principal: Mapping[str, object]
    ) -> tuple[CallInput, CounterReads, object, str | None]:
        """The first decision on a call: its input, the counter reads it used, OPA's result and decision id.

        The counters read and the OPA asked belong to the same policy: the OPA is held across both.
        """
        reads = self._counter_reads
        opa = self._opa.hold()  # a reload waits for it
        try:
            tool = call.tool or {}
            schema = tool.get("inputSchema")
            annotations = tool.get("annotations")
            call_input = CallInput(
                server_id=self.settings.server_id,
                tool_name=call.tool_name,
                arguments=call.arguments,
                request_id=call.request_id,
                now=now,
                client=call.client_info,
                protocol_version=call.protocol_version,
                input_schema=schema if isinstance(schema, dict) else None,
                annotations=annotations if isinstance(annotations, dict) else None,
                state=await self._state(reads, call.tool_name, now),
                arguments_hash=digest,
                principal=principal,
            )
            result, decision_id = await self._opa.evaluate(
                self.settings.decision_path, call_input.to_document(), held=opa
            )
        finally:
            opa.leave()
        return call_input, reads, result, decision_id

    async def _decide_again(self, call_input: CallInput, reads: CounterReads) -> tuple[object, str | None]:
        """The decision after a person approved: by the policy in force now, its counters read again
        when a reload came while the person was being asked."""
        current = self._counter_reads
        opa = self._opa.hold()
        try:
            if current is not reads:
                call_input = replace(call_input, state=await self._state(current, call_input.tool_name, call_input.now))
            return await self._opa.evaluate(self.settings.decision_path, call_input.to_document(), held=opa)
        finally:
            opa.leave()

    def acting_for(self, principal: Mapping[str, object]) -> Gateway:
        """This gateway deciding for ``principal`` (one HTTP client's verified claims) instead of the process's."""
        return _ActingFor(self, principal)

    async def check_call(self, call: CallContext, *, principal: Mapping[str, object] | None = None) -> Verdict:
        """Decide one call; every fault becomes a denial naming its cause (or an allow under fail-open).

        ``principal`` replaces the process's (``GateSettings.principal``) for this call.
        """
        fields: dict[str, object] = {"tool": call.tool_name, "request_id": call.request_id}
        if principal is not None:  # one of many callers (regogate serve): the event says which
            fields["principal"] = principal.get("id")
        who = self.settings.principal if principal is None else principal
        trace = _Trace(random_id(), time.perf_counter(), fields)
        now = self._clock.now()
        digest = self._audit.digest(call.arguments)
        fields.update(self._audit.arguments(call.arguments, digest))
        fields["_arguments"] = call.arguments  # for redacting messages; never written
        try:
            call_input, reads, result, opa_decision_id = await self._decide(call, now, digest, who)
            if opa_decision_id:
                trace = _Trace(opa_decision_id, trace.started, fields)
            decision = parse_decision(result, kind="tools/call", decision_id=trace.decision_id)
            if decision.approval is not None and self._approvals is not None:
                caller = who.get("id")
                answer = await self._approvals.obtain(
                    call, decision.approval, trace.decision_id, asked_by=caller if isinstance(caller, str) else None
                )
                if isinstance(answer, Withheld):
                    if answer.approval_id is not None:
                        fields["approval_id"] = answer.approval_id
                    return self._verdict(trace, False, answer.message, decision.approval.rule, limit="none")
                # OPA keeps the last word: the approved call is decided again, with who approved it.
                approved = replace(call_input, approval=answer.document)
                result, opa_decision_id = await self._decide_again(approved, reads)
                if opa_decision_id:
                    trace = _Trace(opa_decision_id, trace.started, fields)
                decision = parse_decision(result, kind="tools/call", decision_id=trace.decision_id)
                fields["approval_id"] = answer.approval.id
        except StateError as exc:
            return self._fault(trace, "state_error", str(exc), state=True)
        except (RegogateError, ValueError, TypeError) as exc:
            code = exc.code if isinstance(exc, DecisionError) else "internal"
            return self._fault(trace, code, str(exc))
        except Exception as exc:  # the boundary: whatever breaks, the call is not forwarded unless decided
            log.exception("unexpected error while deciding %s", call.tool_name)
            return self._fault(trace, "internal", repr(exc))

        rule = decision.reasons[0].rule if decision.reasons else None
        if not decision.allow:
            return self._verdict(trace, False, decision.message, rule, limit="none")

        ticket: Ticket | None = None
        if decision.rate_limits:
            try:
                # Keys carry the server id, so servers sharing a store never share a counter.
                keyed = [replace(d, key=counter_key(self.settings.server_id, d.key)) for d in decision.rate_limits]
                outcome = await self._store.reserve(keyed, now)
            except StateError as exc:
                return self._fault(trace, "state_error", str(exc), state=True)
            if isinstance(outcome, Refused):
                refused = decision.rate_limits[outcome.index]
                return self._verdict(trace, False, refused.message, refused.rule, limit="refused")
            ticket = outcome
        return self._verdict(trace, True, "", rule, limit="reserved" if ticket else "none", ticket=ticket)

    def _fault(self, trace: _Trace, code: str, detail: str, *, state: bool = False) -> Verdict:
        """Deny the call for a fault, or admit it (uncounted, for a store fault) when its fail mode is open."""
        detail = self._audit.redact(detail, trace.fields.get("_arguments"))
        if (self.settings.state_fail_mode if state else self.settings.fail_mode) == "open":
            flag = "--state-fail-mode" if state else "--fail-mode"
            log.warning("policy check failed (%s: %s); allowing the call because %s open", code, detail, flag)
            limit = "uncounted" if state else "none"
            return self._verdict(trace, True, "", f"regogate.{code}", limit=limit)
        # The model reads a neutral reason: details can name hosts, paths or exception text.
        log.error("policy check failed (%s: %s); the call is denied", code, detail)
        trace = _Trace(trace.decision_id, trace.started, {**trace.fields, "detail": detail})
        message = f"policy check unavailable ({code})"
        return self._verdict(trace, False, message, f"regogate.{code}", limit="none")

    def _verdict(
        self, trace: _Trace, allowed: bool, message: str, rule: str | None, *, limit: str, ticket: Ticket | None = None
    ) -> Verdict:
        enforced = allowed or self.settings.dry_run
        decision_id = trace.decision_id
        fields = trace.fields
        arguments = fields.pop("_arguments", None)
        logged_message = self._audit.redact(message, arguments) if message else None
        event: dict[str, object] = {
            **fields,
            "allow": allowed,
            "forwarded": enforced,
            "dry_run": self.settings.dry_run,
            "rule": rule,
            "message": logged_message,
            "decision_id": decision_id,
            "latency_ms": round((time.perf_counter() - trace.started) * 1000, 3),
            "limit": limit,
        }
        revisions = self._revisions() if self._revisions is not None else None
        if revisions:
            event["revisions"] = revisions
        self._audit.write("decision", **event)
        if not allowed and self.settings.dry_run:
            log.info("dry-run: would deny %s (%s)", fields["tool"], logged_message)
        # Only a reservation needs settling; a call without one costs the relay no settle task.
        pending = _Pending(ticket, str(fields["tool"]), decision_id) if ticket is not None else None
        return Verdict(allowed=enforced, message=message, rule=rule, decision_id=decision_id, ticket=pending)

    async def settle(self, verdict: Verdict, *, succeeded: bool) -> None:
        """Commit the call's reservation when the upstream succeeded, roll it back otherwise."""
        pending = verdict.ticket
        if not isinstance(pending, _Pending) or pending.ticket is None:
            return
        try:
            if succeeded:
                await self._store.commit(pending.ticket)
            else:
                await self._store.rollback(pending.ticket)
        except StateError as exc:
            log.error("rate-limit store failed to settle %s: %s", pending.tool, exc)
            return
        self._audit.write(
            "limit",
            tool=pending.tool,
            decision_id=pending.decision_id,
            limit="committed" if succeeded else "rolled_back",
        )

    async def hidden_tools(
        self,
        tools: list[dict[str, object]],
        *,
        last_page: bool = True,
        principal: Mapping[str, object] | None = None,
    ) -> set[str]:
        """Ask OPA which listed tools to hide; on any fault hide them all (or none, under fail-open)."""
        names = {str(t.get("name")) for t in tools}
        try:
            who = self.settings.principal if principal is None else principal
            document = ListInput(server_id=self.settings.server_id, tools=tools, principal=who).to_document()
            result, decision_id = await self._opa.evaluate(self.settings.decision_path, document)
            decision = parse_decision(result, kind="tools/list", decision_id=decision_id)
        except Exception as exc:  # the boundary: a list we cannot filter shows nothing
            log.error(
                "cannot filter tools/list (%s); %s",
                exc,
                "showing all" if self.settings.fail_mode == "open" else "hiding all",
            )
            return set() if self.settings.fail_mode == "open" else names
        hidden = {name for name in names if decision.is_hidden(name)}
        if self.settings.dry_run:
            if hidden:
                log.info("dry-run: would hide %s", sorted(hidden))
            return set()
        return hidden


class _ActingFor:
    """A ``Gateway`` that decides with a ``PolicyGateway`` for one principal; policy reloads reach it too."""

    def __init__(self, gateway: PolicyGateway, principal: Mapping[str, object]) -> None:
        self._gateway = gateway
        self._principal = principal

    async def check_call(self, call: CallContext) -> Verdict:
        """See ``Gateway.check_call``."""
        return await self._gateway.check_call(call, principal=self._principal)

    async def settle(self, verdict: Verdict, *, succeeded: bool) -> None:
        """See ``Gateway.settle``."""
        await self._gateway.settle(verdict, succeeded=succeeded)

    async def hidden_tools(self, tools: list[dict[str, object]], *, last_page: bool = True) -> set[str]:
        """See ``Gateway.hidden_tools``."""
        return await self._gateway.hidden_tools(tools, last_page=last_page, principal=self._principal)
