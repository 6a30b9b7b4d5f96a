"""The ``regogate`` command line: the top-level parser and the dispatch to one module per command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Final

from regogate.core import PolicySourceError, RegogateError, __version__
from regogate.proxy.cli._usage import EXIT_USAGE, Commands, UsageParser

log = logging.getLogger("regogate")

EXIT_INVALID = 1
#: Every command, in the order ``regogate --help`` lists them; ``run`` has its own parser.
COMMANDS: Final = (
    "run",
    "serve",
    "validate",
    "scan",
    "explain",
    "status",
    "doctor",
    "approvals",
    "convert",
    "core-bundle",
    "mask-bundle",
)

EPILOG = """\
examples:
  regogate -c policies/python.yaml -- npx -y some-mcp-server     (short for regogate run ...)
  regogate serve -c policies/python.yaml -- npx -y some-mcp-server   (Streamable HTTP, many clients)
  regogate scan -o policy.yaml -- npx -y some-mcp-server
  regogate validate -c policy.yaml -- npx -y some-mcp-server
  regogate explain -c policy.yaml --tool write_file --args '{"path": "/etc/passwd"}'
  regogate status -c policy.yaml
  regogate doctor -c policy.yaml
  regogate convert -c policies/python.yaml -o build/python.tar.gz
  regogate core-bundle -o build/gate
  regogate mask-bundle --log-args hash -o build/mask.tar.gz
"""


def _version_text() -> str:
    return f"regogate {__version__} (Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand but ``run``'s flags (see ``regogate run --help``)."""
    parser = UsageParser(
        prog="regogate",
        description="A policy gate for MCP tool calls: every tools/call is decided by Open Policy Agent.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=_version_text())
    commands = parser.add_subparsers(dest="command", parser_class=UsageParser, metavar="COMMAND")
    commands.add_parser(
        "run",
        help="gate an MCP server: regogate [run] -c POLICY [flags] -- COMMAND... (see regogate run --help)",
        add_help=False,
    )
    commands.add_parser(
        "serve",
        help="serve MCP over Streamable HTTP to many clients: regogate serve -c POLICY -- COMMAND... "
        "(see regogate serve --help)",
        add_help=False,
    )
    commands.add_parser(
        "approvals",
        help="list, show, approve and deny pending approvals (see regogate approvals --help)",
        add_help=False,
    )
    for add in _command_parsers():
        add(commands)
    return parser


def _command_parsers() -> tuple[Callable[[Commands], None], ...]:
    """Each command module's ``add_parsers``; imported only when the top-level parser is built, so the
    gate's own start-up (``regogate run``/``serve``) never pays for the converter's and the tools' imports."""
    from regogate.proxy.cli import _bundles, _doctor, _explain, _scan, _status, _validate

    return (
        _validate.add_parsers,
        _scan.add_parsers,
        _explain.add_parsers,
        _status.add_parsers,
        _doctor.add_parsers,
        _bundles.add_parsers,
    )


def _unknown(command: str) -> int:
    sys.stderr.write(
        f"regogate: unknown command {command!r}; the commands are: {', '.join(COMMANDS)} "
        "(see regogate --help; the gate itself is regogate -c POLICY -- COMMAND...)\n"
    )
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    first = arguments[0] if arguments else ""
    if first.startswith("-") and first not in ("-h", "--help", "-V", "--version"):
        # The drop-in form `regogate -c POLICY -- server...` means `regogate run ...`.
        arguments.insert(0, "run")
        first = "run"
    if first == "run":
        from regogate.proxy.cli._run import main as run_main

        return run_main(arguments[1:])
    if first == "serve":
        from regogate.proxy.cli._serve import main as serve_main

        return serve_main(arguments[1:])
    if first == "approvals":
        from regogate.proxy.cli._approvals import main as approvals_main

        return approvals_main(arguments[1:])
    if first and not first.startswith("-") and first not in COMMANDS:
        return _unknown(first)
    parser = build_parser()
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except PolicySourceError as exc:
        count = len(exc.problems)
        sys.stderr.write(f"{exc}\n{count} problem{'s' if count != 1 else ''} found\n")
        return EXIT_INVALID
    except (RegogateError, OSError) as exc:
        sys.stderr.write(f"regogate: {exc}\n")
        return EXIT_INVALID


if __name__ == "__main__":
    raise SystemExit(main())
