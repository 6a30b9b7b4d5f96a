"""What every part of regogate shares: the error hierarchy, the policy vocabulary, the clock and random ids."""

from regogate.core._clock import Clock, FileClock, SystemClock, utc_second
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
from regogate.core._ids import random_id
from regogate.core._state_dir import AUDIT_FILE, audit_log_path, server_state_dir, state_dir
from regogate.core._vocabulary import LOG_ARGS, WILDCARD, WINDOWS, LogArgs, Window

#: regogate's version: the one source the distribution's metadata and ``regogate --version`` read.
__version__ = "0.1.0"

__all__ = [
    "AUDIT_FILE",
    "DECISION_ERROR_CODES",
    "LOG_ARGS",
    "WILDCARD",
    "WINDOWS",
    "Clock",
    "ConfigError",
    "DecisionError",
    "DecisionErrorCode",
    "FileClock",
    "LogArgs",
    "PolicySourceError",
    "Problem",
    "RegogateError",
    "StateError",
    "SystemClock",
    "Window",
    "__version__",
    "audit_log_path",
    "random_id",
    "server_state_dir",
    "state_dir",
    "utc_second",
]
