"""Transports: how a client reaches regogate (stdio today)."""

from regogate.proxy.transports._stdio import run_relay

__all__ = ["run_relay"]
