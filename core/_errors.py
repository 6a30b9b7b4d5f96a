"""The one error hierarchy of regogate.

    RegogateError
    ├── ConfigError          bad command line or settings; the process cannot start
    ├── PolicySourceError    a policy file that cannot be read, validated or converted
    ├── DecisionError        OPA gave no usable decision (carries a code from DECISION_ERROR_CODES)
    └── StateError           the rate-limit store failed

Errors a user reads render as ``file:line: message`` where a location is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

DecisionErrorCode = Literal[
    "opa_unreachable",
    "opa_timeout",
    "opa_error",
    "decision_undefined",
    "decision_malformed",
]
DECISION_ERROR_CODES: tuple[DecisionErrorCode, ...] = (
    "opa_unreachable",
    "opa_timeout",
    "opa_error",
    "decision_undefined",
    "decision_malformed",
)


class RegogateError(Exception):
    """Base of every error regogate raises on purpose."""


class ConfigError(RegogateError):
    """The command line or a setting is wrong; regogate cannot start."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy file, with where it is."""

    source: str
    line: int
    column: int
    location: str
    message: str

    def __str__(self) -> str:
        where = f" {self.location}:" if self.location else ""
        return f"{self.source}:{self.line}:{self.column}:{where} {self.message}"


class PolicySourceError(RegogateError):
    """A policy file that cannot be read, validated or converted; lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class DecisionError(RegogateError):
    """OPA could not give a usable decision; the call is denied."""

    def __init__(self, code: DecisionErrorCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code: DecisionErrorCode = code
        self.detail = detail


class StateError(RegogateError):
    """The rate-limit store failed (unreachable, locked, corrupt)."""
