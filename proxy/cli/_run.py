"""``regogate run``: put a policy gate between an MCP client (our stdio) and an upstream MCP server.

The gate itself (policy, OPA, store, audit, gateway) is opened by ``_gate``; this module runs one stdio
session through it, to a spawned command or (``--upstream URL``) a Streamable HTTP server.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from typing import Final

import anyio

from regogate.proxy.cli._failures import report_failure
from regogate.proxy.cli._gate import open_gate
from regogate.proxy.cli._run_config import RunConfig, parse_args
from regogate.proxy.cli._stable_read import install_lease_signal
from regogate.proxy.lifecycle import start_watchdog, sweep_stale_dirs
from regogate.proxy.transports import run_relay

__all__ = ["EXIT_CONFIG", "UVLOOP", "main", "serve"]

log = logging.getLogger("regogate")

#: uvloop's event loop spends less of regogate's CPU per decided call than asyncio's (bench/notes.md).
UVLOOP: Final = importlib.util.find_spec("uvloop") is not None

EXIT_CONFIG = 1


async def serve(config: RunConfig) -> int:
    """Run the proxy until the client or the upstream ends; returns the exit status."""
    async with open_gate(config, spawn_upstream=True) as gate:
        if config.target is not None:
            # Imported here: the HTTP client costs start-up time that a process upstream never needs.
            from regogate.proxy.transports import run_bridge

            status = await run_bridge(config.target, gate.checked, deny_prefix=config.deny_prefix)
        else:
            assert gate.upstream is not None
            status = await run_relay(gate.upstream, gate.checked, deny_prefix=config.deny_prefix)
        gate.audit.write("shutdown", status=status)
    return status


def main(argv: Sequence[str]) -> int:
    """Entry point of ``regogate run``."""
    config = parse_args(argv)
    try:
        # Before any child exists: whatever ends regogate, its whole process tree goes with it.
        sweep_stale_dirs()
        start_watchdog()
        install_lease_signal()  # the reload's writer check takes file leases
        return anyio.run(serve, config, backend_options={"use_uvloop": UVLOOP})
    except Exception as exc:  # the top-level boundary: one line saying what failed, never a traceback
        return report_failure(exc, debug=config.debug)
    except KeyboardInterrupt as exc:
        return report_failure(exc, debug=config.debug)
