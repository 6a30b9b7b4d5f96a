"""``regogate convert``, ``core-bundle`` and ``mask-bundle``: write OPA bundles, signed when asked."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
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
from regogate.proxy.cli._usage import Commands
from regogate.proxy.policy import find_opa


def add_parsers(commands: Commands) -> None:
    """Add ``convert``, ``core-bundle`` and ``mask-bundle``."""
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
    convert.set_defaults(handler=_convert)

    core = commands.add_parser(
        "core-bundle",
        help="write the gate bundle every converted policy loads next to",
        description="Write regogate's hand-written gate (package regogate.gate) as an OPA bundle.",
        epilog="example: regogate core-bundle -o build/gate && opa run -s -b build/gate -b build/python.tar.gz",
    )
    core.add_argument("-o", "--output", required=True, metavar="OUT", help="a directory, or a file ending .tar.gz")
    core.set_defaults(handler=_core_bundle)

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
    mask.set_defaults(handler=_mask_bundle)
    for command in (convert, core, mask):
        _signing_flags(command)


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


def _convert(args: argparse.Namespace) -> int:
    path = Path(args.config)
    policy = load_policy(path, server_id=args.server_id)
    # The bundle names the file, not the path it was reached by (same revision however it is spelled).
    named = replace(policy, source=path.name)
    written = _write(policy_bundle(named, path.read_text(encoding="utf-8")), args)
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
