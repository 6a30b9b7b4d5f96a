"""``regogate serve``: one gate, many MCP clients over Streamable HTTP, one upstream per client session.

The gate is the one ``regogate run`` opens (``_gate``); each session decides through it for its own
principal. The HTTP stack (Starlette, uvicorn) is the ``serve`` extra, imported only here.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

import anyio

from regogate.core import StateError
from regogate.proxy.cli._failures import EXIT_START, report_failure
from regogate.proxy.cli._gate import Gate, open_gate
from regogate.proxy.cli._run import UVLOOP
from regogate.proxy.cli._serve_config import ServeConfig, parse_serve_args
from regogate.proxy.cli._stable_read import install_lease_signal
from regogate.proxy.lifecycle import start_watchdog, sweep_stale_dirs

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["EXTRA_HINT", "main"]

log = logging.getLogger("regogate")

#: The one line ``regogate serve`` prints when its extra is not installed.
EXTRA_HINT: Final = (
    "regogate serve needs the HTTP server libraries: pip install 'regogate[serve]' (Starlette, uvicorn and PyJWT)"
)
_EXTRA_MODULES: Final = ("starlette", "uvicorn", "jwt")


def _missing_extra() -> bool:
    return any(importlib.util.find_spec(name) is None for name in _EXTRA_MODULES)


async def _readiness(gate: Gate) -> str | None:
    if not await gate.opa.health(bundles=True):
        return "OPA has not activated its bundles"
    try:
        await gate.store.ping()
    except StateError:
        return "the rate-limit store does not answer"
    return None


async def _serve(config: ServeConfig) -> int:
    from starlette.routing import Route

    from regogate.proxy.transports import (
        METADATA_PATH,
        Authenticator,
        GatewaySession,
        HttpGuard,
        JwtAuth,
        JwtSettings,
        Listener,
        McpEndpoint,
        SessionPool,
        build_app,
        serve_http,
    )

    run = config.run
    listener = Listener(config.host, config.port, config.tls_cert, config.tls_key, config.trusted_proxies)
    sock = listener.bind()  # before the gate starts: a taken port fails at once; port 0 picks one
    port = sock.getsockname()[1]
    async with open_gate(run, listen=f"{config.host}:{port}") as gate:
        principal = dict(run.principal)

        async def fixed_principal(request: Request) -> Mapping[str, object] | Response:
            return principal

        authenticate: Authenticator = fixed_principal
        extra_routes: list[Route] = []
        if config.jwt is not None:
            settings = JwtSettings(
                config.jwt.jwks, config.jwt.issuer, config.jwt.audience, config.jwt.algorithms, config.jwt.clock_skew
            )
            verifier = JwtAuth(settings)
            await verifier.start()
            authenticate = verifier

            async def metadata(request: Request) -> Response:
                return verifier.metadata(request)

            extra_routes = [Route(path, metadata, methods=["GET"]) for path in (METADATA_PATH, METADATA_PATH + "/mcp")]

        def open_session(session_id: str, who: Mapping[str, object]) -> GatewaySession:
            gateway = gate.gateway.acting_for(who)
            upstream = run.target if run.target is not None else run.upstream
            return GatewaySession(session_id, who, gateway, upstream, deny_prefix=run.deny_prefix)

        async with anyio.create_task_group() as sessions:
            pool = SessionPool(
                open_session, sessions, max_sessions=config.max_sessions, idle_timeout=config.idle_timeout
            )

            def listening(url: str) -> None:
                sys.stderr.write(f"regogate: serving MCP on {url}\n")
                sys.stderr.flush()
                gate.audit.write("listening", url=url)

            guard = HttpGuard.for_listener(
                config.host,
                port,
                tls=config.tls_cert is not None,
                hosts=config.allowed_hosts,
                origins=config.allowed_origins,
                max_body=config.max_body,
            )
            endpoint = McpEndpoint(pool, guard, authenticate)
            app = build_app(endpoint, lambda: _readiness(gate), extra_routes)
            await serve_http(app, pool, listener, sock, drain_timeout=config.drain_timeout, on_listening=listening)
            sessions.cancel_scope.cancel()
        gate.audit.write("shutdown", status=0)
    return 0


def main(argv: Sequence[str]) -> int:
    """Entry point of ``regogate serve``."""
    if _missing_extra():
        sys.stderr.write(f"{EXTRA_HINT}\n")
        return EXIT_START
    config = parse_serve_args(argv)
    try:
        sweep_stale_dirs()
        start_watchdog()
        install_lease_signal()
        return anyio.run(_serve, config, backend_options={"use_uvloop": UVLOOP})
    except Exception as exc:  # the top-level boundary: one line saying what failed, never a traceback
        return report_failure(exc, debug=config.run.debug)
    except KeyboardInterrupt as exc:
        return report_failure(exc, debug=config.run.debug)
