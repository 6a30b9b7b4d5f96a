"""regogate's stdio proxy: every MCP ``tools/call`` decided by OPA before it reaches the server."""

from regogate.proxy._errors import (
    ConfigError,
    DecisionError,
    PolicySourceError,
    Problem,
    RegogateError,
    StateError,
)

__all__ = [
    "ConfigError",
    "DecisionError",
    "PolicySourceError",
    "Problem",
    "RegogateError",
    "StateError",
]
