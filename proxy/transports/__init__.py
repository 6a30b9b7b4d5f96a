"""Transports: how a client reaches regogate, and how regogate reaches the server (a process, or HTTP)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from regogate.proxy.transports._stdio import run_relay

if TYPE_CHECKING:
    from regogate.proxy.transports._bridge import run_bridge

__all__ = ["run_bridge", "run_relay"]


def __getattr__(name: str) -> object:
    # The HTTP client costs start-up time and memory that a process upstream never needs: loaded on first use.
    if name == "run_bridge":
        from regogate.proxy.transports._bridge import run_bridge

        return run_bridge
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
