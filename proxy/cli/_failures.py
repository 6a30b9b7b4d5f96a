"""How `regogate run` reports a failure: one line on stderr saying what failed and what to do, and an exit status.

Exit statuses of ``regogate run``:

- the upstream's own status once it ran (128 + N when signal N ended it);
- ``EXIT_START`` (1): regogate could not start (policy, settings, OPA, state store, upstream command);
- ``EXIT_USAGE`` (2): the command line is wrong;
- ``EXIT_INTERNAL`` (70): a bug in regogate; ``--debug`` prints its traceback for a report;
- ``EXIT_INTERRUPTED`` (130): interrupted before the session began.

Expected failures never print a traceback; failures raised inside task groups arrive wrapped in
exception groups and are unwrapped here.
"""

from __future__ import annotations

import sys
import traceback
from typing import Final

from regogate.core import ConfigError, PolicySourceError, RegogateError, StateError

__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_START", "leaf_errors", "report_failure"]

EXIT_START: Final = 1
EXIT_INTERNAL: Final = 70
EXIT_INTERRUPTED: Final = 130
#: Where to report a bug; named in the one line an internal error prints.
REPORT_HINT: Final = "rerun with --debug for the traceback and report it (see docs/security.md)"


def leaf_errors(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, in order; ``exc`` itself when it is not a group."""
    if isinstance(exc, BaseExceptionGroup):
        leaves: list[BaseException] = []
        for inner in exc.exceptions:
            leaves.extend(leaf_errors(inner))
        return leaves
    return [exc]


def _line(exc: BaseException) -> str:
    if isinstance(exc, PolicySourceError):
        return (
            f"{exc}\nregogate: the policy is not valid; nothing was started (check it with `regogate validate -c FILE`)"
        )
    if isinstance(exc, StateError):
        return f"regogate: {exc}; check --state (is the store running and writable?); nothing was started"
    if isinstance(exc, ConfigError | RegogateError):
        return f"regogate: {exc}"
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"regogate: cannot start:{where}: {exc.strerror or exc}; check the path and its permissions"
    return f"regogate: internal error: {type(exc).__name__}: {exc}; {REPORT_HINT}"


def report_failure(exc: BaseException, *, debug: bool = False) -> int:
    """Write what failed to stderr (a traceback too under ``debug``) and return the exit status."""
    leaves = leaf_errors(exc)
    if all(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
        sys.stderr.write("regogate: interrupted\n")
        return EXIT_INTERRUPTED
    expected: list[BaseException] = [leaf for leaf in leaves if isinstance(leaf, RegogateError | OSError)]
    shown = expected or [leaf for leaf in leaves if not isinstance(leaf, KeyboardInterrupt)]
    seen: set[str] = set()
    for leaf in shown:
        line = _line(leaf)
        if line not in seen:
            seen.add(line)
            sys.stderr.write(line + "\n")
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    return EXIT_START if expected else EXIT_INTERNAL
