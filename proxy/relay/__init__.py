"""The relay: JSON-RPC framing and wire rules, the upstream process, the tool catalogue, the Gateway seam."""

from typing import TYPE_CHECKING

from regogate.proxy.relay._bounded import DECISION_TIMEOUT
from regogate.proxy.relay._codec import BadLine, Decoded, decode, encode
from regogate.proxy.relay._feed import Feed, expire_waiter
from regogate.proxy.relay._framing import LineReader, LineWriter, Oversize, PeerClosed
from regogate.proxy.relay._gateway import CallContext, Gateway, Verdict
from regogate.proxy.relay._http_answer import HttpAnswer
from regogate.proxy.relay._http_target import READ_TIMEOUT, HttpTarget, parse_headers
from regogate.proxy.relay._http_wire import SocketWire, StreamWire, Wire
from regogate.proxy.relay._pipes import CarriedSource, Carry, LineSink, LineSource, RoutedSink
from regogate.proxy.relay._relay import DEFAULT_DENY_PREFIX, Relay
from regogate.proxy.relay._upstream import Upstream, exit_status
from regogate.proxy.relay._wire import (
    INVALID_REQUEST,
    PROTOCOL_VERSION_META_KEY,
    UPSTREAM_GONE,
    Key,
    error_line,
    id_key,
    is_modern,
)

if TYPE_CHECKING:
    from regogate.proxy.relay._http_upstream import HttpUpstream

__all__ = [
    "DECISION_TIMEOUT",
    "DEFAULT_DENY_PREFIX",
    "INVALID_REQUEST",
    "PROTOCOL_VERSION_META_KEY",
    "READ_TIMEOUT",
    "UPSTREAM_GONE",
    "BadLine",
    "CallContext",
    "CarriedSource",
    "Carry",
    "Decoded",
    "Feed",
    "Gateway",
    "HttpAnswer",
    "HttpTarget",
    "HttpUpstream",
    "Key",
    "LineReader",
    "LineSink",
    "LineSource",
    "LineWriter",
    "Oversize",
    "PeerClosed",
    "Relay",
    "RoutedSink",
    "SocketWire",
    "StreamWire",
    "Upstream",
    "Verdict",
    "Wire",
    "decode",
    "encode",
    "error_line",
    "exit_status",
    "expire_waiter",
    "id_key",
    "is_modern",
    "parse_headers",
]


def __getattr__(name: str) -> object:
    # The HTTP client costs start-up time that a process upstream never needs: imported on first use.
    if name == "HttpUpstream":
        from regogate.proxy.relay._http_upstream import HttpUpstream

        return HttpUpstream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
