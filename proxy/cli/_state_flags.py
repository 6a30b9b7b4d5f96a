"""The state-store flags the commands that read counters share (``explain``, ``status``, ``doctor``)."""

from __future__ import annotations

import argparse

from regogate.proxy.cli._run_config import DEFAULT_STATE
from regogate.proxy.state import RateLimitStore, ServerCounters, default_state_spec, open_store

__all__ = ["DEFAULT_STATE", "add_state_flags", "open_state"]


def add_state_flags(parser: argparse.ArgumentParser) -> None:
    """``--state``, ``--state-prefix`` and ``--state-dir``, spelled as ``regogate run`` spells them."""
    parser.add_argument(
        "--state",
        "--state-dsn",
        dest="state",
        default=DEFAULT_STATE,
        metavar="STORE",
        help="the counters' store as given to regogate run: memory, sqlite:///path/state.db, redis://host:port/db "
        "(default: the SQLite file regogate run uses by default, in the state directory)",
    )
    parser.add_argument("--state-prefix", default="", metavar="PREFIX", help="the --state-prefix regogate run uses")
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="regogate's state directory (audit logs per server id); default $XDG_STATE_HOME/regogate",
    )


def open_state(args: argparse.Namespace, server_id: str) -> RateLimitStore:
    """Open the store the flags name.

    Raises:
        ConfigError: an unknown store spec.
        StateError: the store cannot be opened.
    """
    return ServerCounters(open_store(args.state or default_state_spec(), args.state_prefix), server_id)
