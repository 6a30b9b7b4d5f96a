"""The ``regogate`` command line: validate, convert, core-bundle, mask-bundle and run (the proxy)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from regogate.converters import (
    LOG_ARGS,
    Bundle,
    gate_bundle,
    load_policy,
    mask_bundle,
    policy_bundle,
    sign_bundle,
    write_bundle,
)
from regogate.core import ConfigError, PolicySourceError
from regogate.proxy.cli._usage import EXIT_USAGE, UsageParser
from regogate.proxy.policy import find_opa

log = logging.getLogger("regogate")

EXIT_INVALID = 1
COMMANDS = ("validate", "convert", "core-bundle", "mask-bundle")

EPILOG = """\
examples:
  regogate validate -c policies/python.yaml
  regogate convert -c policies/python.yaml -o build/python.tar.gz
  regogate core-bundle -o build/gate
  regogate mask-bundle --log-args hash -o build/mask.tar.gz
  regogate convert -c policies/python.yaml -o build/python.tar.gz --signing-key keys/bundle-signing.pem
  regogate -c policies/python.yaml -- npx -y some-mcp-server
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = UsageParser(
        prog="regogate",
        description="A policy gate for MCP tool calls: every tools/call is decided by Open Policy Agent.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", parser_class=UsageParser, metavar="COMMAND")

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

    mask = commands.add_parser(
        "mask-bundle",
        help="write the decision-log mask (package system.log) for --log-args",
        description=(
            "Write the system.log policy that masks tool arguments in OPA's decision log, as an OPA bundle: "
            "hash replaces them with their SHA-256, none erases them, full leaves them. It also keeps "
            "regogate's reads of data.system.bundles out of the decision log."
        ),
        epilog="example: regogate mask-bundle --log-args hash -o build/bundles/mask.tar.gz",
    )
    mask.add_argument(
        "--log-args",
        choices=LOG_ARGS,
        default="hash",
        help="tool arguments in OPA's decision log: a hash (default), nothing, or in clear",
    )
    mask.add_argument("-o", "--output", required=True, metavar="OUT", help="a directory, or a file ending .tar.gz")
    for command in (convert, core, mask):
        _signing_flags(command)
    return parser


def _signing_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--signing-key",
        metavar="KEY",
        help="sign the bundle with this PEM private key (runs opa sign); OPA verifies it with the public key",
    )
    command.add_argument(
        "--signing-alg",
        default="RS256",
        metavar="ALG",
        help="the signature algorithm for --signing-key: RS256 (default), ES256, PS256, ...",
    )
    command.add_argument(
        "--claims-file", metavar="FILE", help='extra JWT claims for the signature, e.g. {"scope": "prod"}'
    )
    command.add_argument(
        "--opa-bin", metavar="FILE", help="the opa binary that signs (default: $REGOGATE_OPA, PATH, cache)"
    )


def _write(bundle: Bundle, args: argparse.Namespace) -> str:
    """Sign the bundle when asked, write it, and say so in a few words."""
    signed = ""
    if args.signing_key:
        bundle = sign_bundle(
            bundle,
            opa_bin=find_opa(args.opa_bin),
            signing_key=Path(args.signing_key),
            algorithm=args.signing_alg,
            claims_file=Path(args.claims_file) if args.claims_file else None,
        )
        signed = f", signed {args.signing_alg}"
    write_bundle(bundle, Path(args.output))
    return f"revision {bundle.revision}{signed}"


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
    written = _write(policy_bundle(policy, path.read_text(encoding="utf-8")), args)
    sys.stdout.write(f"{args.config}: wrote {args.output} (package regogate.policies.{policy.server_id}, {written})\n")
    return 0


def _core_bundle(args: argparse.Namespace) -> int:
    written = _write(gate_bundle(), args)
    sys.stdout.write(f"wrote {args.output} (package regogate.gate, {written})\n")
    return 0


def _mask_bundle(args: argparse.Namespace) -> int:
    written = _write(mask_bundle(args.log_args), args)
    sys.stdout.write(f"wrote {args.output} (package system.log, --log-args {args.log_args}, {written})\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "approvals":
        from regogate.proxy.cli._approvals import main as approvals_main

        return approvals_main(arguments[1:])
    if arguments and arguments[0] not in (*COMMANDS, "run", "approvals", "-h", "--help"):
        # The drop-in form `regogate -c POLICY -- server…` means `regogate run …`.
        arguments.insert(0, "run")
    if arguments and arguments[0] == "run":
        from regogate.proxy.cli._run import main as run_main

        return run_main(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handlers = {"validate": _validate, "convert": _convert, "core-bundle": _core_bundle, "mask-bundle": _mask_bundle}
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
