"""The decision contract of rego/README.md as values: the input regogate sends, the decision it accepts.

``CallInput.to_document()`` and ``ListInput.to_document()`` are the only builders of OPA input;
``parse_decision`` is the only reader of OPA's answer. Anything outside the contract is refused
with ``DecisionError("decision_malformed", ...)`` naming the field, so a policy bug denies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from regogate.core import WINDOWS, DecisionError, Window, utc_second
from regogate.proxy.state import Reservation

__all__ = [
    "CONTRACT_VERSION",
    "DEFAULT_DENY_MESSAGE",
    "WINDOWS",
    "ApprovalObligation",
    "CallInput",
    "Decision",
    "DecisionKind",
    "ListInput",
    "RateLimitDeclaration",
    "Reason",
    "Window",
    "parse_decision",
]

CONTRACT_VERSION: Final = 1
DEFAULT_DENY_MESSAGE: Final = "Denied by policy"

DecisionKind = Literal["tools/call", "tools/list"]

JsonObject = Mapping[str, object]


def _time_document(now: float) -> dict[str, object]:
    seconds = int(now // 1)
    # Scaling the whole float would add rounding noise of ~100 ns; scale only the fraction.
    unix_ns = seconds * 1_000_000_000 + round((now - seconds) * 1_000_000_000)
    return {"unix_ns": unix_ns, "rfc3339": f"{utc_second(unix_ns // 1_000_000_000)}Z"}


@dataclass(frozen=True, slots=True)
class CallInput:
    """The input for one ``tools/call`` (contract version 1).

    ``now`` is the proxy clock's reading in unix seconds; ``rfc3339`` is rounded down to the second.
    ``input_schema`` and ``annotations`` are left out of the document when unknown (``None``);
    ``protocol_version`` likewise. ``state`` maps scope to counter to its value in the current window.
    ``arguments_hash`` is the keyed hash of the arguments (the audit log's ``args_hash``), left out
    under ``--log-args none``; the decision-log mask keeps it where it erases the arguments.
    ``principal`` is who is calling: claims with at least a string ``id``.
    """

    server_id: str
    tool_name: str
    arguments: JsonObject
    request_id: str | int | None
    now: float
    client: JsonObject = field(default_factory=dict)
    protocol_version: str | None = None
    input_schema: JsonObject | None = None
    annotations: JsonObject | None = None
    state: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    approval: JsonObject | None = None
    """``input.approval``: who approved this call, how and when; only on the decision after a person approved."""
    arguments_hash: str | None = None
    principal: JsonObject = field(default_factory=dict)

    def to_document(self) -> dict[str, object]:
        """Return the JSON-ready input document OPA receives as ``input``."""
        request: dict[str, object] = {"id": self.request_id}
        if self.protocol_version is not None:
            request["protocol_version"] = self.protocol_version
        tool: dict[str, object] = {"name": self.tool_name, "arguments": self.arguments}
        if self.arguments_hash is not None:
            tool["arguments_hash"] = self.arguments_hash
        if self.input_schema is not None:
            tool["input_schema"] = self.input_schema
        if self.annotations is not None:
            tool["annotations"] = self.annotations
        document: dict[str, object] = {
            "version": CONTRACT_VERSION,
            "kind": "tools/call",
            "server": {"id": self.server_id},
            "client": self.client,
            "principal": self.principal,
            "request": request,
            "time": _time_document(self.now),
            "tool": tool,
            "state": self.state,
        }
        if self.approval is not None:
            document["approval"] = self.approval
        return document


@dataclass(frozen=True, slots=True)
class ListInput:
    """The input for one ``tools/list`` response (contract version 1).

    ``tools`` are the page's entries as the server sent them (each with a string ``name``); OPA sees
    each one's ``name`` and, when it is an object, its ``annotations``. They are read as they are,
    not copied into an object per tool first: a listing may hold thousands.
    """

    server_id: str
    tools: Sequence[Mapping[str, object]]
    client: JsonObject = field(default_factory=dict)
    principal: JsonObject = field(default_factory=dict)

    def to_document(self) -> dict[str, object]:
        """Return the JSON-ready input document OPA receives as ``input``."""
        tools: list[dict[str, object]] = []
        for tool in self.tools:
            annotations = tool.get("annotations")
            if isinstance(annotations, dict):
                tools.append({"name": str(tool["name"]), "annotations": annotations})
            else:
                tools.append({"name": str(tool["name"])})
        return {
            "version": CONTRACT_VERSION,
            "kind": "tools/list",
            "server": {"id": self.server_id},
            "client": self.client,
            "principal": self.principal,
            "tools": tools,
        }


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a call was denied: the rule and the message the client sees."""

    rule: str
    message: str


@dataclass(frozen=True, slots=True)
class RateLimitDeclaration(Reservation):
    """A limit the proxy must reserve before forwarding an allowed call; ``limit=None`` only counts.

    It is the store's ``Reservation`` plus the rule and message a refusal names.
    """

    rule: str
    message: str


@dataclass(frozen=True, slots=True)
class ApprovalObligation:
    """A call the policy admits only once a person approved it: which rule asks, what it says, for how long."""

    rule: str
    message: str
    timeout: float
    """Seconds a person has to answer, and how long an approval lasts."""


@dataclass(frozen=True, slots=True)
class Decision:
    """OPA's verdict on one message.

    For ``tools/list``, ``allow=False`` hides every tool and ``hidden`` names the tools to remove
    otherwise; use ``is_hidden``.
    """

    allow: bool
    reasons: tuple[Reason, ...] = ()
    rate_limits: tuple[RateLimitDeclaration, ...] = ()
    hidden: frozenset[str] = frozenset()
    decision_id: str | None = None
    approval: ApprovalObligation | None = None
    """Set (with ``allow`` false) when the call waits for a person's approval."""

    @property
    def message(self) -> str:
        """The denial message: the first reason's, or ``Denied by policy``."""
        return self.reasons[0].message if self.reasons else DEFAULT_DENY_MESSAGE

    def is_hidden(self, tool_name: str) -> bool:
        """Whether a ``tools/list`` decision removes ``tool_name`` from the list."""
        return not self.allow or tool_name in self.hidden


def _malformed(detail: str) -> DecisionError:
    return DecisionError("decision_malformed", detail)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _number(value: object) -> float | None:
    """``value`` as a float when it is a JSON number, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _string(entry: Mapping[str, object], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise _malformed(f"{where}.{key} must be a string, got {_type_name(value)}")
    return value


def _array(decision: Mapping[str, object], key: str) -> list[object]:
    value = decision.get(key, [])
    if not isinstance(value, list):
        raise _malformed(f"{key} must be an array, got {_type_name(value)}")
    return value


def _object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise _malformed(f"{where} must be an object, got {_type_name(value)}")
    return value


def _reasons(decision: Mapping[str, object]) -> tuple[Reason, ...]:
    reasons: list[Reason] = []
    for index, item in enumerate(_array(decision, "reasons")):
        where = f"reasons[{index}]"
        entry = _object(item, where)
        reasons.append(Reason(rule=_string(entry, "rule", where), message=_string(entry, "message", where)))
    return tuple(reasons)


def _declaration(item: object, where: str) -> RateLimitDeclaration:
    entry = _object(item, where)
    key = _string(entry, "key", where)
    if "limit" not in entry:
        raise _malformed(f"{where}.limit is required (a number, or null to count only)")
    raw_limit = entry["limit"]
    limit = _number(raw_limit)
    if raw_limit is not None and limit is None:
        raise _malformed(f"{where}.limit must be a number or null, got {_type_name(raw_limit)}")
    window = entry.get("window")
    if window != "minute" and window != "hour" and window != "day":
        raise _malformed(f"{where}.window must be one of minute, hour, day, got {window!r}")
    raw_cost = entry.get("cost")
    cost = _number(raw_cost)
    if cost is None:
        raise _malformed(f"{where}.cost must be a number, got {_type_name(raw_cost)}")
    if not cost >= 0:
        raise _malformed(f"{where}.cost must be at least 0, got {raw_cost}")
    exclusive = entry.get("exclusive", False)
    if not isinstance(exclusive, bool):
        raise _malformed(f"{where}.exclusive must be a boolean, got {_type_name(exclusive)}")
    return RateLimitDeclaration(
        key=key,
        limit=limit,
        window=window,
        cost=cost,
        rule=_string(entry, "rule", where),
        message=_string(entry, "message", where),
        exclusive=exclusive,
    )


def _approval(decision: Mapping[str, object], allow: bool) -> ApprovalObligation | None:
    if "approval" not in decision:
        return None
    entry = _object(decision["approval"], "approval")
    timeout = _number(entry.get("timeout"))
    if timeout is None or not timeout > 0:
        raise _malformed(f"approval.timeout must be a number of seconds greater than 0, got {entry.get('timeout')!r}")
    if allow:
        raise _malformed("approval may only come with allow: false (the call waits for a person)")
    return ApprovalObligation(
        rule=_string(entry, "rule", "approval"), message=_string(entry, "message", "approval"), timeout=timeout
    )


def _hidden(decision: Mapping[str, object]) -> frozenset[str]:
    names: set[str] = set()
    for index, name in enumerate(_array(decision, "hidden")):
        if not isinstance(name, str):
            raise _malformed(f"hidden[{index}] must be a string, got {_type_name(name)}")
        names.add(name)
    return frozenset(names)


def parse_decision(result: object, *, kind: DecisionKind, decision_id: str | None = None) -> Decision:
    """Read OPA's ``result`` for a message of ``kind`` into a ``Decision``.

    Every field is type-checked, whichever kind it matters to; ``rate_limits`` are kept for
    ``tools/call`` only and ``hidden`` for ``tools/list`` only. Unknown keys are ignored.

    Raises:
        DecisionError: code ``decision_malformed``, naming the field and what is wrong with it.
    """
    if isinstance(result, bool):
        return Decision(allow=result, decision_id=decision_id)
    decision = _object(result, "the decision (a boolean or an object)")
    allow = decision.get("allow")
    if not isinstance(allow, bool):
        raise _malformed(f"allow must be a boolean, got {_type_name(allow)}")
    reasons = _reasons(decision)
    rate_limits = tuple(
        _declaration(item, f"rate_limits[{index}]") for index, item in enumerate(_array(decision, "rate_limits"))
    )
    hidden = _hidden(decision)
    approval = _approval(decision, allow) if kind == "tools/call" else None
    return Decision(
        allow=allow,
        approval=approval,
        reasons=reasons,
        rate_limits=rate_limits if kind == "tools/call" else (),
        hidden=hidden if kind == "tools/list" else frozenset(),
        decision_id=decision_id,
    )
