"""The state-store flags: ``regogate run`` keeps its state where they say, the other commands read it there."""

from __future__ import annotations

import argparse
from typing import Final

from regogate.proxy.state import RateLimitStore, ServerCounters, default_state_spec, open_store

__all__ = ["DEFAULT_STATE", "add_state_flags", "open_state"]

#: Where ``regogate run`` counts when given no ``--state``; ``status``, ``explain`` and ``doctor`` read the same.
#: No --state: the default store, a SQLite file in the state directory (resolved by the command).
DEFAULT_STATE: Final = None

_RUN_HELP: Final = {
    "--state": "rate-limit counters: sqlite:///path/state.db, redis://[user:pass@]host:port/db, or memory (gone when "
    "the session ends); default: STATE_DIR/state.db, one SQLite file shared by all your regogate processes "
    "(--state-dsn is Intercept's spelling)",
    "--state-dir": "regogate's state directory: the default counter store, and one directory per server id for its "
    "audit log (default: $XDG_STATE_HOME/regogate, i.e. ~/.local/state/regogate)",
    "--state-prefix": "namespace for counters in a shared store",
}
_READER_HELP: Final = {
    "--state": "the counters' store as given to regogate run: memory, sqlite:///path/state.db, redis://host:port/db "
    "(default: the SQLite file regogate run uses by default, in the state directory)",
    "--state-dir": "regogate's state directory (audit logs per server id); default $XDG_STATE_HOME/regogate",
    "--state-prefix": "the --state-prefix regogate run uses",
}


def add_state_flags(parser: argparse.ArgumentParser, *, keeps_state: bool = False) -> None:
    """``--state`` (alias ``--state-dsn``), ``--state-dir`` and ``--state-prefix``, as ``regogate run`` spells them.

    ``keeps_state`` is for ``regogate run`` itself: the help says what the flags set rather than what they read.
    """
    helps = _RUN_HELP if keeps_state else _READER_HELP
    parser.add_argument(
        "--state", "--state-dsn", dest="state", default=DEFAULT_STATE, metavar="STORE", help=helps["--state"]
    )
    parser.add_argument("--state-dir", metavar="DIR", help=helps["--state-dir"])
    parser.add_argument("--state-prefix", default="", metavar="PREFIX", help=helps["--state-prefix"])


def open_state(args: argparse.Namespace, server_id: str) -> RateLimitStore:
    """Open the store the flags name.

    Raises:
        ConfigError: an unknown store spec.
        StateError: the store cannot be opened.
    """
    return ServerCounters(open_store(args.state or default_state_spec(), args.state_prefix), server_id)
