"""The validated form of an Intercept-style policy: what the loader produces and the generator reads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from regogate.core import WILDCARD, Window

Action = Literal["evaluate", "deny", "allow", "require_approval"]
Operator = Literal["eq", "neq", "in", "not_in", "lt", "lte", "gt", "gte", "regex", "contains", "exists"]

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
    "contains",
    "exists",
)
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
    increment: float
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
        return self.on_deny if self.on_deny is not None else f'Denied by rule "{self.name}"'


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
