"""Transports: how a client reaches regogate, and how regogate reaches the server (a process, or HTTP).

``run_relay`` (stdio to a server process) and the flag rules load at once; the rest (``run_bridge``
and ``regogate serve``'s HTTP face) load on first use: their HTTP libraries cost start-up time and
memory that a stdio session to a process never needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from regogate.proxy.transports._flag_rules import ASYMMETRIC_ALGORITHMS, DEFAULT_ALGORITHMS, is_loopback
from regogate.proxy.transports._stdio import run_relay

if TYPE_CHECKING:
    from regogate.proxy.transports._bridge import run_bridge
    from regogate.proxy.transports._gateway_session import GatewaySession
    from regogate.proxy.transports._http_guard import HttpGuard
    from regogate.proxy.transports._http_server import Listener, build_app, serve_http
    from regogate.proxy.transports._jwt_auth import METADATA_PATH, JwtAuth, JwtSettings
    from regogate.proxy.transports._mcp_endpoint import Authenticator, McpEndpoint
    from regogate.proxy.transports._session_pool import SessionPool

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "METADATA_PATH",
    "Authenticator",
    "GatewaySession",
    "HttpGuard",
    "JwtAuth",
    "JwtSettings",
    "Listener",
    "McpEndpoint",
    "SessionPool",
    "build_app",
    "is_loopback",
    "run_bridge",
    "run_relay",
    "serve_http",
]

_LAZY = {
    "run_bridge": "_bridge",
    "GatewaySession": "_gateway_session",
    "HttpGuard": "_http_guard",
    "Listener": "_http_server",
    "build_app": "_http_server",
    "serve_http": "_http_server",
    "METADATA_PATH": "_jwt_auth",
    "JwtAuth": "_jwt_auth",
    "JwtSettings": "_jwt_auth",
    "Authenticator": "_mcp_endpoint",
    "McpEndpoint": "_mcp_endpoint",
    "SessionPool": "_session_pool",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
