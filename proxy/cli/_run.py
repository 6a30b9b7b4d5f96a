"""``regogate run``: put a policy gate between an MCP client (our stdio) and an upstream MCP server.

This module wires the parts together: the flags (``_run_config``), the policy and its reloads
(``_reload``), OPA, the state store, the audit log, the gateway and the stdio relay.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shlex
import shutil
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import IO, Final
from urllib.parse import urlsplit

import anyio

from regogate.converters import mask_bundle, write_bundle
from regogate.core import (
    Clock,
    ConfigError,
    FileClock,
    RegogateError,
    StateError,
    SystemClock,
    audit_log_path,
)
from regogate.proxy.approval import open_approval_store
from regogate.proxy.cli._failures import report_failure
from regogate.proxy.cli._reload import PolicySource, watch_policy
from regogate.proxy.cli._run_config import RunConfig, parse_args
from regogate.proxy.cli._stable_read import install_lease_signal
from regogate.proxy.lifecycle import private_dir, start_watchdog, sweep_stale_dirs
from regogate.proxy.policy import (
    ArgumentHasher,
    AuditLog,
    EmbeddedOpa,
    GateSettings,
    OfferedToolsCheck,
    OpaClient,
    PolicyGateway,
    RevisionTracker,
    default_key_path,
    load_key,
    probe_decision,
    supervise_opa,
    wait_for_bundles,
)
from regogate.proxy.policy._approvals import ApprovalDesk
from regogate.proxy.relay import Upstream
from regogate.proxy.state import open_store
from regogate.proxy.transports import run_relay

__all__ = ["EXIT_CONFIG", "main", "serve"]

log = logging.getLogger("regogate")

#: uvloop's event loop spends less of regogate's CPU per decided call than asyncio's (bench/notes.md).
UVLOOP: Final = importlib.util.find_spec("uvloop") is not None

EXIT_CONFIG = 1


@asynccontextmanager
async def _opa(
    config: RunConfig, bundles: list[Path], decision_log: IO[str] | None
) -> AsyncIterator[tuple[OpaClient, EmbeddedOpa | None]]:
    if config.opa_url:
        async with OpaClient(config.opa_url, timeout=config.opa_timeout) as client:
            await wait_for_bundles(client, config.opa_ready_timeout)
            yield client, None
        return

    def sink(line: str) -> None:
        assert decision_log is not None
        decision_log.write(line + "\n")

    async with EmbeddedOpa(
        bundles,
        opa_bin=config.opa_bin,
        client_timeout=config.opa_timeout,
        decision_logs=decision_log is not None,
        decision_log=sink if decision_log is not None else None,
    ) as sidecar:
        yield sidecar.client, sidecar


def _open_decision_log(target: str | None) -> IO[str] | None:
    if target is None:
        return None
    if target == "-":
        return sys.stderr
    try:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        return open(target, "a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise ConfigError(f"--decision-log {target}: {exc}") from exc


def approvals_flag(config: RunConfig) -> str:
    """What a person adds to ``regogate approvals`` to reach this run's store (a Redis password masked)."""
    if config.state == "memory":
        return ""
    parts = urlsplit(config.state)
    shown = config.state
    if parts.password is not None:
        shown = parts._replace(netloc=f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}").geturl()
    prefix = f" --state-prefix {shlex.quote(config.state_prefix)}" if config.state_prefix else ""
    return f"--state {shlex.quote(shown)}{prefix}"


def _audit_path(config: RunConfig, server_id: str) -> Path | None:
    if config.audit_log == "none":
        return None
    return Path(config.audit_log) if config.audit_log else audit_log_path(server_id, config.state_dir)


def _shown_store(spec: str) -> str:
    """The store spec without credentials (``redis://user:pass@host`` -> ``redis://host``)."""
    scheme, sep, rest = spec.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else spec


def _open_audit(config: RunConfig, server_id: str, clock: Clock) -> AuditLog:
    path = _audit_path(config, server_id)
    # The keyed hash joins the audit log and OPA's decision log without revealing the arguments.
    hasher = None if config.log_args == "none" else ArgumentHasher(load_key(default_key_path(config.state_dir)))
    try:
        audit = AuditLog(path, clock, log_args=config.log_args, hasher=hasher)
    except OSError as exc:
        raise ConfigError(f"audit log {path}: {exc} (--audit-log FILE puts it elsewhere, none turns it off)") from exc
    if path is not None:
        sys.stderr.write(f"regogate: audit log {path}\n")
    return audit


async def serve(config: RunConfig) -> int:
    """Run the proxy until the client or the upstream ends; returns the exit status."""
    # Test-only: a file holding unix seconds moves regogate's clock (window boundaries through the CLI).
    test_clock = os.environ.get("REGOGATE_TEST_CLOCK")
    clock: Clock = FileClock(test_clock) if test_clock else SystemClock()
    workdir = private_dir("run")
    audit: AuditLog | None = None
    decision_log: IO[str] | None = None
    try:
        extra: list[Path] = list(config.bundles)
        if config.decision_log is not None:
            # OPA logs each decision's input verbatim: mask the arguments as the audit log does.
            write_bundle(mask_bundle(config.log_args), workdir / "mask")
            extra.append(workdir / "mask")
        source = PolicySource(config, workdir, extra=extra)
        bundles = source.build()
        audit = _open_audit(config, source.server_id, clock)
        decision_log = _open_decision_log(config.decision_log)
        async with AsyncExitStack() as stack:
            if config.state_default:
                where = f"regogate: rate-limit counters in {config.state}"
                sys.stderr.write(f"{where} (they outlive the session; --state memory keeps them in memory)\n")
            store = open_store(config.state, config.state_prefix)
            stack.push_async_callback(store.aclose)
            try:
                await store.ping()
            except StateError as exc:
                # Serving anyway: calls that need no counter go on, and a store coming back is picked up.
                log.error("%s; calls that need a counter are denied until it answers", exc)
            upstream: Upstream | None = None
            if config.target is None:
                # Started while OPA starts, so the two start-ups overlap; it reads nothing until the
                # relay runs, which is after OPA answered, so nothing reaches it undecided.
                upstream = Upstream.spawn(config.upstream)
                stack.push_async_callback(_discard, upstream)
            client, sidecar = await stack.enter_async_context(_opa(config, bundles, decision_log))
            # A wrong path or a missing policy would deny every call and hide every tool: refuse instead.
            await probe_decision(client, config.opa_path, source.server_id)
            tracker = RevisionTracker(client, audit)
            revisions = await tracker.refresh()
            if config.fail_mode == "open":
                log.warning("--fail-mode open: calls are ALLOWED whenever OPA fails")
            if config.state_fail_mode == "open":
                log.warning("--state-fail-mode open: calls are admitted UNCOUNTED whenever the state store fails")
            settings = GateSettings(
                server_id=source.server_id,
                decision_path=config.opa_path,
                fail_mode=config.fail_mode,
                state_fail_mode=config.state_fail_mode,
                dry_run=config.dry_run,
                principal=config.principal,
            )
            approvals = open_approval_store(config.state, config.state_prefix)
            stack.push_async_callback(approvals.aclose)
            desk = ApprovalDesk(approvals, clock, audit, source.server_id, state_flag=approvals_flag(config))
            gateway = PolicyGateway(
                client,
                store,
                clock,
                audit,
                settings,
                policy=source.policy,
                approvals=desk,
                revisions=tracker.active,
            )
            try:
                opa_version = await client.version()
            except RegogateError:
                opa_version = "unknown"
            audit.write(
                "start",
                policy=str(config.policy),
                server_id=source.server_id,
                revision=source.revision,
                revisions=revisions,
                opa=config.opa_url or "embedded",
                opa_version=opa_version,
                state=_shown_store(config.state),
                state_prefix=config.state_prefix,
                audit_log=audit.path,
                fail_mode=config.fail_mode,
                state_fail_mode=config.state_fail_mode,
                dry_run=config.dry_run,
                upstream=[config.target.display] if config.target else list(config.upstream),
                upstream_headers=[name for name, _ in config.target.headers] if config.target else [],
                principal=config.principal.get("id"),
            )
            checked = OfferedToolsCheck(gateway, source.policy, audit)
            async with anyio.create_task_group() as tg:
                tg.start_soon(tracker.run)
                if sidecar is not None:
                    tg.start_soon(watch_policy, source, sidecar, gateway, audit, tracker, checked.policy_loaded)
                    tg.start_soon(supervise_opa, sidecar, audit)
                if config.target is not None:
                    # Imported here: the HTTP client costs start-up time that a process upstream never needs.
                    from regogate.proxy.transports._bridge import run_bridge

                    status = await run_bridge(config.target, checked, deny_prefix=config.deny_prefix)
                else:
                    assert upstream is not None
                    status = await run_relay(upstream, checked, deny_prefix=config.deny_prefix)
                tg.cancel_scope.cancel()
            audit.write("shutdown", status=status)
            return status
    finally:
        if audit is not None:
            audit.close()
        if decision_log is not None and decision_log is not sys.stderr:
            decision_log.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def _discard(upstream: Upstream) -> None:
    """Stop an upstream the session never ran (start-up failed); a no-op after the session stopped it."""
    await upstream.stop()
    upstream.close()


def main(argv: Sequence[str]) -> int:
    """Entry point of ``regogate run``."""
    config = parse_args(argv)
    try:
        # Before any child exists: whatever ends regogate, its whole process tree goes with it.
        sweep_stale_dirs()
        start_watchdog()
        install_lease_signal()  # the reload's writer check takes file leases
        return anyio.run(serve, config, backend_options={"use_uvloop": UVLOOP})
    except Exception as exc:  # the top-level boundary: one line saying what failed, never a traceback
        return report_failure(exc, debug=config.debug)
    except KeyboardInterrupt as exc:
        return report_failure(exc, debug=config.debug)
