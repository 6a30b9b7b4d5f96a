"""``regogate validate``: check a policy, and with ``-- COMMAND`` that it names only tools the server offers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio

from regogate.converters import load_policy
from regogate.proxy.cli._server_tools import LIST_TIMEOUT, list_tools_of
from regogate.proxy.cli._upstream_flags import add_remote_flags, quiet_http_logs, read_remote_target
from regogate.proxy.cli._usage import Commands
from regogate.proxy.policy import unknown_tools

EXIT_INVALID = 1


def upstream_command(args: argparse.Namespace) -> list[str]:
    """The command after ``--`` (argparse keeps the ``--`` in a REMAINDER)."""
    command = list(args.upstream)
    return command[1:] if command[:1] == ["--"] else command


def add_parsers(commands: Commands) -> None:
    """Add ``validate``."""
    validate = commands.add_parser(
        "validate",
        help="check a YAML policy (and, given a server command, its tool names)",
        description=(
            "Check a YAML policy; print every problem with its place, or one line when it is valid. "
            "With -- COMMAND (or --upstream URL), also list every tool that MCP server offers (all pages) and "
            "warn (exit 1) about tools the policy names that the server does not offer."
        ),
        epilog=(
            "examples:\n  regogate validate -c policies/python.yaml\n"
            "  regogate validate -c policy.yaml -- npx -y @modelcontextprotocol/server-filesystem /tmp\n"
            "  regogate validate -c policy.yaml --upstream https://host/mcp --header-env Authorization=MCP_AUTH"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("-c", "--config", required=True, metavar="FILE", help="the YAML policy file")
    validate.add_argument("--server-id", metavar="ID", help="the server id (default: the file name)")
    validate.add_argument(
        "--timeout", type=float, default=LIST_TIMEOUT, metavar="SECONDS", help="how long the server may take to list"
    )
    add_remote_flags(validate)
    validate.add_argument("upstream", nargs=argparse.REMAINDER, help="optional: -- the MCP server command")
    validate.set_defaults(handler=run, parser=validate)


def run(args: argparse.Namespace) -> int:
    """Validate; with a server command or URL, also compare tool names."""
    command: Sequence[str] = upstream_command(args)
    target = read_remote_target(args.parser, args, list(command), required=False)
    policy = load_policy(args.config, server_id=args.server_id)
    for note in policy.warnings:
        sys.stderr.write(f"{note}\n")
    sys.stdout.write(
        f"{args.config}: valid: {len(policy.tools)} tool entries, {len(policy.rules)} rules, default {policy.default}\n"
    )
    if not command and target is None:
        return 0
    if target is not None:
        quiet_http_logs()
    tools = anyio.run(lambda: list_tools_of(command, target, timeout=args.timeout))
    warnings = unknown_tools(policy, (str(t["name"]) for t in tools))
    for warning in warnings:
        sys.stderr.write(f"{warning}\n")
    sys.stdout.write(
        f"{args.config}: the server offers {len(tools)} tools; "
        f"{len(warnings) or 'no'} name{'s' if len(warnings) != 1 else ''} in the policy it does not offer\n"
    )
    return EXIT_INVALID if warnings else 0
