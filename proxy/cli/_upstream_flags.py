"""Flags for a remote upstream (``--upstream``, headers, timeout; run, scan, validate) and for who is calling (run)."""

from __future__ import annotations

import argparse
import logging
import os

from regogate.core import ConfigError
from regogate.proxy.cli._principal import ENV_VAR as PRINCIPAL_ENV_VAR
from regogate.proxy.cli._principal import load_principal
from regogate.proxy.relay import READ_TIMEOUT, HttpTarget, parse_headers

__all__ = ["add_remote_flags", "add_upstream_flags", "quiet_http_logs", "read_remote_target", "read_upstream_flags"]


def add_upstream_flags(p: argparse.ArgumentParser) -> None:
    """``--upstream``, ``--header``, ``--header-env``, ``--upstream-timeout``, ``--principal(-file)``."""
    add_remote_flags(p)
    p.add_argument(
        "--principal",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a claim about who is calling (input.principal.KEY); id defaults to the local user name",
    )
    p.add_argument(
        "--principal-file",
        metavar="FILE",
        help=f"who is calling, as a JSON object of claims (default: ${PRINCIPAL_ENV_VAR}, else the local user)",
    )


def add_remote_flags(p: argparse.ArgumentParser) -> None:
    """``--upstream``, ``--header``, ``--header-env``, ``--upstream-timeout``: a Streamable HTTP server."""
    p.add_argument(
        "--upstream",
        dest="upstream_url",
        metavar="URL",
        help="a remote MCP server (Streamable HTTP), e.g. https://host/mcp, instead of a command after --",
    )
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="with --upstream: a header on every request (visible in ps; use --header-env for secrets)",
    )
    p.add_argument(
        "--header-env",
        action="append",
        default=[],
        metavar="NAME=ENVVAR",
        help="with --upstream: a header whose value is read from the environment variable ENVVAR",
    )
    p.add_argument(
        "--upstream-timeout",
        type=float,
        default=READ_TIMEOUT,
        metavar="SECONDS",
        help=f"with --upstream: fail a call when the server is silent this long (default: {READ_TIMEOUT:g})",
    )


def read_upstream_flags(
    parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str], *, required: bool = True
) -> tuple[HttpTarget | None, dict[str, object]]:
    """The remote upstream (``None`` for a command) and the principal; usage mistakes exit 2 with one line."""
    target = read_remote_target(parser, args, command, required=required)
    try:
        return target, load_principal(args.principal_file, args.principal, os.environ)
    except ConfigError as exc:
        parser.error(str(exc))


def read_remote_target(
    parser: argparse.ArgumentParser, args: argparse.Namespace, command: list[str], *, required: bool = True
) -> HttpTarget | None:
    """The ``--upstream`` server (``None`` for a command); usage mistakes exit 2 with one line, no header value.

    ``required``: one of the two must be given (else neither is fine).
    """
    if command and args.upstream_url:
        parser.error("give either --upstream URL or a command after --, not both")
    if required and not command and not args.upstream_url:
        parser.error("no upstream MCP server: give a command after -- or --upstream URL")
    if (args.header or args.header_env) and not args.upstream_url:
        parser.error("--header and --header-env go with --upstream URL")
    if args.upstream_timeout <= 0:
        parser.error("--upstream-timeout must be positive")
    if not args.upstream_url:
        return None
    try:
        headers = parse_headers(args.header, args.header_env)
        return HttpTarget(args.upstream_url, headers, read_timeout=args.upstream_timeout)
    except ConfigError as exc:
        parser.error(str(exc))


def quiet_http_logs() -> None:
    """httpx and httpcore log request lines with the full URL (query secrets included): never below WARNING."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.WARNING, logging.getLogger().level))
