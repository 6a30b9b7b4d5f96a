"""What every part of regogate shares: the error hierarchy, the policy vocabulary and the clock."""

from regogate.core._clock import Clock, SystemClock
from regogate.core._errors import (
    DECISION_ERROR_CODES,
    ConfigError,
    DecisionError,
    DecisionErrorCode,
    PolicySourceError,
    Problem,
    RegogateError,
    StateError,
)
from regogate.core._vocabulary import LOG_ARGS, WILDCARD, WINDOWS, LogArgs, Window

__all__ = [
    "DECISION_ERROR_CODES",
    "LOG_ARGS",
    "WILDCARD",
    "WINDOWS",
    "Clock",
    "ConfigError",
    "DecisionError",
    "DecisionErrorCode",
    "LogArgs",
    "PolicySourceError",
    "Problem",
    "RegogateError",
    "StateError",
    "SystemClock",
    "Window",
]
