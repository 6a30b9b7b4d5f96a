"""The relay: JSON-RPC framing and wire rules, the upstream process, the tool catalogue, the Gateway seam."""

from regogate.proxy.relay._framing import LineReader, LineWriter
from regogate.proxy.relay._gateway import CallContext, Gateway, Verdict
from regogate.proxy.relay._relay import DECISION_TIMEOUT, DEFAULT_DENY_PREFIX, Relay
from regogate.proxy.relay._upstream import Upstream, exit_status

__all__ = [
    "DECISION_TIMEOUT",
    "DEFAULT_DENY_PREFIX",
    "CallContext",
    "Gateway",
    "LineReader",
    "LineWriter",
    "Relay",
    "Upstream",
    "Verdict",
    "exit_status",
]
