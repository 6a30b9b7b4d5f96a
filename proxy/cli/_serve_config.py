"""``regogate serve``'s flags: every flag of ``regogate run`` plus where and how the gateway listens."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from regogate.proxy.cli._run_config import RunConfig, build_parser, read_config
from regogate.proxy.transports import ASYMMETRIC_ALGORITHMS, DEFAULT_ALGORITHMS, is_loopback

__all__ = ["DEFAULT_LISTEN", "JwtFlags", "ServeConfig", "parse_serve_args"]

DEFAULT_LISTEN: Final = "127.0.0.1:8765"
#: Sessions open at once; each has its own upstream process.
DEFAULT_MAX_SESSIONS: Final = 64
#: A session without a request for this long is closed (the MCP SDK's server uses the same default).
DEFAULT_IDLE_TIMEOUT: Final = 1800.0
#: Largest request body; the MCP SDK's server default.
DEFAULT_MAX_BODY: Final = 4 * 1024 * 1024
#: At shutdown, how long calls in flight get to be answered before their sessions are closed.
DEFAULT_DRAIN_TIMEOUT: Final = 10.0

EPILOG = """\
examples:
  regogate serve -c policies/filesystem.yaml -- mcp-server-filesystem /srv/data
      (http://127.0.0.1:8765/mcp, one server process per client session, the local user as principal)
  regogate serve -c policy.yaml --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem \\
      --auth jwt --jwks https://idp.example.com/.well-known/jwks.json \\
      --issuer https://idp.example.com/ --audience https://mcp.example.com/mcp -- github-mcp-server
"""


@dataclass(frozen=True)
class ServeConfig:
    """``regogate serve``'s settings: the gate's (``run``) and the listener's."""

    run: RunConfig
    host: str
    port: int
    max_sessions: int
    idle_timeout: float
    max_body: int
    drain_timeout: float
    allowed_hosts: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    tls_cert: Path | None
    tls_key: Path | None
    trusted_proxies: tuple[str, ...] = ()
    """``--trusted-proxy``: the proxies in front whose ``X-Forwarded-*`` headers are believed."""
    jwt: JwtFlags | None = None
    """``--auth jwt``: how tokens are verified; ``None`` for ``--auth none``."""


@dataclass(frozen=True)
class JwtFlags:
    """``--jwks``, ``--issuer``, ``--audience``, ``--algorithms``, ``--clock-skew`` as given."""

    jwks: str
    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    clock_skew: float


def _listen(parser: argparse.ArgumentParser, value: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        parser.error(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8765 or [::1]:8765")
    return host.strip("[]") if host.startswith("[") else host, int(port)


def build_serve_parser() -> argparse.ArgumentParser:
    """``regogate run``'s parser with the listener's flags added."""
    p = build_parser()
    p.prog = "regogate serve"
    p.usage = "regogate serve -c POLICY [--listen HOST:PORT] [flags] (-- UPSTREAM_COMMAND [ARGS...] | --upstream URL)"
    p.description = (
        "Serve MCP over Streamable HTTP to many clients; each client session gets its own UPSTREAM_COMMAND "
        "process (or its own session with the server at URL), and every tools/call is decided by OPA first."
    )
    p.epilog = EPILOG
    g = p.add_argument_group("the HTTP gateway")
    g.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help=f"default: {DEFAULT_LISTEN}")
    g.add_argument("--max-sessions", type=int, default=DEFAULT_MAX_SESSIONS, metavar="N", help="default: %(default)s")
    g.add_argument(
        "--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT, metavar="SECONDS", help="default: %(default)g"
    )
    g.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, metavar="BYTES", help="default: %(default)s")
    g.add_argument(
        "--drain-timeout",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT,
        metavar="SECONDS",
        help="at SIGTERM/SIGINT, time for calls in flight to be answered (default: %(default)g)",
    )
    g.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a Host header to accept besides the loopback names (off loopback: only these, when given)",
    )
    g.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser Origin to accept (default: only the loopback origins of --listen)",
    )
    g.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a proxy in front (IP address or network) whose X-Forwarded-Proto/-For are believed (default: none)",
    )
    g.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate chain (PEM)")
    g.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
    a = p.add_argument_group("who is calling (verified)")
    a.add_argument(
        "--auth",
        choices=("none", "jwt"),
        default="none",
        help="jwt: every request needs Authorization: Bearer <JWT>, its claims are input.principal; "
        "none (loopback only): every session is --principal (default: none)",
    )
    a.add_argument("--jwks", metavar="FILE|URL", help="the issuer's public keys (a JWKS), re-read every 5 minutes")
    a.add_argument("--issuer", metavar="ISS", help="the iss every token must carry")
    a.add_argument("--audience", metavar="AUD", help="the aud every token must carry: this gateway's URL")
    a.add_argument(
        "--algorithms",
        default=",".join(DEFAULT_ALGORITHMS),
        metavar="ALG,...",
        help="signature algorithms accepted (public-key only; default: %(default)s)",
    )
    a.add_argument(
        "--clock-skew", type=float, default=60.0, metavar="SECONDS", help="leeway on exp/nbf (default: %(default)g)"
    )
    return p


def parse_serve_args(argv: Sequence[str]) -> ServeConfig:
    """Parse and check the flags; usage mistakes exit 2 with one line."""
    parser = build_serve_parser()
    args = parser.parse_args(list(argv))
    run = read_config(parser, args)
    host, port = _listen(parser, args.listen)
    jwt_flags = _jwt_flags(parser, args)
    if jwt_flags is None and not is_loopback(host):
        parser.error(f"--listen {args.listen}: off loopback every caller must be identified: add --auth jwt")
    if args.max_sessions < 1:
        parser.error("--max-sessions must be at least 1")
    if args.idle_timeout <= 0 or args.drain_timeout < 0:
        parser.error("--idle-timeout must be positive and --drain-timeout not negative")
    if args.max_body < 1024:
        parser.error("--max-body must be at least 1024 bytes")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    for proxy in args.trusted_proxy:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            parser.error(f"--trusted-proxy {proxy!r}: expected an IP address or network, e.g. 10.0.0.5 or 10.0.0.0/24")
    return ServeConfig(
        run=run,
        host=host,
        port=port,
        max_sessions=args.max_sessions,
        idle_timeout=args.idle_timeout,
        max_body=args.max_body,
        drain_timeout=args.drain_timeout,
        allowed_hosts=tuple(args.allowed_host),
        allowed_origins=tuple(args.allowed_origin),
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        trusted_proxies=tuple(args.trusted_proxy),
        jwt=jwt_flags,
    )


def _jwt_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> JwtFlags | None:
    given = [f"--{n}" for n in ("jwks", "issuer", "audience") if getattr(args, n)]
    if args.auth == "none":
        if given:
            parser.error(f"{', '.join(given)} go with --auth jwt")
        return None
    missing = [f"--{n}" for n in ("jwks", "issuer", "audience") if not getattr(args, n)]
    if missing:
        parser.error(f"--auth jwt needs {', '.join(missing)}")
    algorithms = tuple(a.strip() for a in args.algorithms.split(",") if a.strip())
    bad = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
    if bad or not algorithms:
        parser.error(
            f"--algorithms: {', '.join(bad) or 'none given'} refused; only public-key signatures "
            f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}), never none or HS*"
        )
    if args.clock_skew < 0 or args.clock_skew > 600:
        parser.error("--clock-skew must be between 0 and 600 seconds")
    return JwtFlags(args.jwks, args.issuer, args.audience, algorithms, args.clock_skew)
