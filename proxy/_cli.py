"""The ``regogate`` command line: validate, convert, core-bundle and run (the proxy)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from regogate.converters import gate_bundle, load_policy, policy_bundle, write_bundle
from regogate.proxy._errors import ConfigError, PolicySourceError

log = logging.getLogger("regogate")

EXIT_USAGE = 2
EXIT_INVALID = 1

EPILOG = """\
examples:
  regogate validate -c policies/python.yaml
  regogate convert -c policies/python.yaml -o build/python.tar.gz
  regogate core-bundle -o build/gate
  regogate -c policies/python.yaml -- npx -y some-mcp-server
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"regogate: {message} (see regogate --help)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(
        prog="regogate",
        description="A policy gate for MCP tool calls: every tools/call is decided by Open Policy Agent.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check a YAML policy and list every problem",
        description="Check a YAML policy; print every problem with its place, or one line when it is valid.",
        epilog="example: regogate validate -c policies/python.yaml",
    )
    validate.add_argument("-c", "--config", required=True, metavar="FILE", help="the YAML policy file")

    convert = commands.add_parser(
        "convert",
        help="turn a YAML policy into an OPA bundle",
        description="Validate a YAML policy and write it as an OPA bundle (a directory, or a .tar.gz).",
        epilog="example: regogate convert -c policies/github.yaml -o build/github.tar.gz --server-id github",
    )
    convert.add_argument("-c", "--config", required=True, metavar="FILE", help="the YAML policy file")
    convert.add_argument("-o", "--output", required=True, metavar="OUT", help="a directory, or a file ending .tar.gz")
    convert.add_argument(
        "--server-id",
        metavar="ID",
        help="the server id that selects this policy (default: the file name, e.g. python for python.yaml)",
    )

    core = commands.add_parser(
        "core-bundle",
        help="write the gate bundle every converted policy loads next to",
        description="Write regogate's hand-written gate (package regogate.gate) as an OPA bundle.",
        epilog="example: regogate core-bundle -o build/gate && opa run -s -b build/gate -b build/python.tar.gz",
    )
    core.add_argument("-o", "--output", required=True, metavar="OUT", help="a directory, or a file ending .tar.gz")
    return parser


def _validate(args: argparse.Namespace) -> int:
    policy = load_policy(args.config)
    rules = len(policy.rules)
    sys.stdout.write(
        f"{args.config}: valid: {len(policy.tools)} tool entries, {rules} rules, default {policy.default}\n"
    )
    return 0


def _convert(args: argparse.Namespace) -> int:
    path = Path(args.config)
    policy = load_policy(path, server_id=args.server_id)
    bundle = policy_bundle(policy, path.read_text(encoding="utf-8"))
    write_bundle(bundle, Path(args.output))
    sys.stdout.write(
        f"{args.config}: wrote {args.output} (package regogate.policies.{policy.server_id}, "
        f"revision {bundle.revision})\n"
    )
    return 0


def _core_bundle(args: argparse.Namespace) -> int:
    write_bundle(gate_bundle(), Path(args.output))
    sys.stdout.write(f"wrote {args.output} (package regogate.gate)\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] not in ("validate", "convert", "core-bundle", "run", "-h", "--help"):
        # The drop-in form `regogate -c POLICY -- server…` means `regogate run …`.
        arguments.insert(0, "run")
    if arguments and arguments[0] == "run":
        from regogate.proxy._command import main as run_main

        return run_main(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handlers = {"validate": _validate, "convert": _convert, "core-bundle": _core_bundle}
    try:
        return handlers[args.command](args)
    except PolicySourceError as exc:
        count = len(exc.problems)
        sys.stderr.write(f"{exc}\n{count} problem{'s' if count != 1 else ''} found\n")
        return EXIT_INVALID
    except (ConfigError, OSError) as exc:
        sys.stderr.write(f"regogate: {exc}\n")
        return EXIT_INVALID


if __name__ == "__main__":
    raise SystemExit(main())
