"""The validated form of an Intercept-style policy: what the loader produces and the generator reads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from regogate.converters._gotext import go_quote
from regogate.core import WILDCARD, Problem, Window

Action = Literal["evaluate", "deny", "allow", "require_approval"]
Operator = Literal[
    "eq", "neq", "in", "not_in", "lt", "lte", "gt", "gte", "regex", "not_regex", "contains", "not_contains", "exists"
]

ACTIONS: tuple[Action, ...] = ("evaluate", "deny", "allow", "require_approval")
OPERATORS: tuple[Operator, ...] = (
    "eq",
    "neq",
    "in",
    "not_in",
    "lt",
    "lte",
    "gt",
    "gte",
    "regex",
    "not_regex",
    "contains",
    "not_contains",
    "exists",
)
#: Operators that pass when their positive counterpart fails (the path must still resolve).
NEGATIVE_OPERATORS: frozenset[Operator] = frozenset(("neq", "not_in", "not_regex", "not_contains"))
GLOBAL_SCOPE = "_global"


@dataclass(frozen=True)
class Mark:
    """A 1-based line and column in the policy file."""

    line: int
    column: int


@dataclass(frozen=True)
class Condition:
    """One test on an argument (``args.a.b``), a counter (``state.<scope>.<counter>``) or a claim (``principal.x``)."""

    path: str
    op: Operator
    value: object
    mark: Mark

    @property
    def arg_path(self) -> tuple[str, ...] | None:
        """The keys below ``arguments`` for an ``args.`` path, else None."""
        if self.path.startswith("args."):
            return tuple(self.path.split(".")[1:])
        return None

    @property
    def principal_path(self) -> tuple[str, ...] | None:
        """The keys below ``input.principal`` for a ``principal.`` path (a regogate extension), else None."""
        if self.path.startswith("principal."):
            return tuple(self.path.split(".")[1:])
        return None

    @property
    def counter(self) -> tuple[str, str] | None:
        """``(scope, counter)`` for a ``state.`` path, else None."""
        if self.path.startswith("state."):
            scope, _, counter = self.path[len("state.") :].rpartition(".")
            return scope, counter
        return None


@dataclass(frozen=True)
class RateLimit:
    """``rate_limit: N/<window>``."""

    limit: int
    window: Window


@dataclass(frozen=True)
class Counter:
    """A rule's ``state`` block: the counter its calls add to."""

    name: str
    window: Window
    increment: int
    increment_from: tuple[str, ...] | None  # keys below ``arguments``
    mark: Mark


@dataclass(frozen=True)
class Rule:
    """One rule of a tool (or of the wildcard ``"*"``), in file order."""

    name: str
    ident: str  # the name as a Rego identifier
    tool: str
    index: int
    order: int  # position in evaluation order across the whole policy
    action: Action
    on_deny: str | None
    rate_limit: RateLimit | None
    conditions: tuple[Condition, ...]
    counter: Counter | None
    required_args: bool
    schema: bool
    approval_timeout: str | None
    mark: Mark
    per_principal: bool = False
    """``per: principal`` (a regogate extension): the rate limit is counted for each ``principal.id``."""

    @property
    def scope(self) -> str:
        """The counter scope: the tool's name, or ``_global`` for wildcard rules."""
        return GLOBAL_SCOPE if self.tool == WILDCARD else self.tool

    @property
    def message(self) -> str:
        """What a denial by this rule says."""
        if self.on_deny is not None:
            return self.on_deny
        if self.rate_limit is not None:
            return f"Rate limit of {self.rate_limit.limit} per {self.rate_limit.window} reached. Try again later."
        return f"Denied by rule {go_quote(self.name)}"

    @property
    def limit_message(self) -> str:
        """What a refused reservation of this rule's counter says."""
        if self.on_deny is None and self.rate_limit is None:
            return f"Rate limit exceeded for {self.name}"
        return self.message

    @property
    def limit_condition(self) -> Condition | None:
        """The first ``lt``/``lte`` on the rule's own counter: its limit, as Intercept finds it."""
        if self.counter is None:
            return None
        own = (self.scope, self.counter.name)
        return next((c for c in self.conditions if c.counter == own and c.op in ("lt", "lte")), None)

    @property
    def limit(self) -> tuple[float, bool] | None:
        """``(bound, exclusive)`` of the limit condition; without one the rule never reserves (its counter stays)."""
        condition = self.limit_condition
        if condition is None:
            return None
        assert isinstance(condition.value, int | float)
        return condition.value, condition.op == "lt"


@dataclass(frozen=True)
class Tool:
    """A key under ``tools``: a tool name (or ``"*"``) and its rules."""

    name: str
    rules: tuple[Rule, ...]
    mark: Mark


@dataclass(frozen=True)
class Policy:
    """A whole policy file, validated."""

    source: str
    server_id: str
    version: str
    description: str | None
    default: Literal["allow", "deny"]
    default_mark: Mark | None
    hide: tuple[str, ...]
    hide_mark: Mark | None
    tools: tuple[Tool, ...]  # file order, the wildcard included
    #: Plain scalars a YAML 1.1 reader would take differently (``NO``, ``12:00``, ``0o17`` ...).
    warnings: tuple[Problem, ...] = ()

    @property
    def listed(self) -> tuple[str, ...]:
        """Tool names listed under ``tools``, the wildcard excluded."""
        return tuple(t.name for t in self.tools if t.name != WILDCARD)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule in evaluation order: listed tools in file order, then the wildcard's."""
        return tuple(sorted((r for t in self.tools for r in t.rules), key=lambda r: r.order))


_NOT_IDENT = re.compile(r"[^a-z0-9]+")


def snake_case(name: str) -> str:
    """A Rego-safe snake_case identifier for a YAML name (``write-rate-limit`` → ``write_rate_limit``)."""
    ident = _NOT_IDENT.sub("_", name.lower()).strip("_")
    if not ident:
        ident = "rule"
    if ident[0].isdigit():
        ident = f"rule_{ident}"
    return ident
