"""regogate's proxy: every MCP ``tools/call`` decided by OPA before it reaches the server.

The flow, one package per step: ``transports`` (the client's side) -> ``relay`` (framing, wire, tool
catalogue, the upstream) -> ``policy`` (the gateway, OPA, audit) -> ``state`` (rate-limit stores);
``cli`` wires them together.
"""

from regogate.core import (
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
