"""The gate behind every face of regogate: the policy and its reloads, OPA, the counter store, the audit log
and the ``PolicyGateway``, opened once per process and shared by every session (stdio, bridge or HTTP)."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
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
from regogate.proxy.cli._reload import PolicySource, watch_policy
from regogate.proxy.cli._run_config import RunConfig
from regogate.proxy.lifecycle import private_dir
from regogate.proxy.policy import (
    ApprovalDesk,
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
from regogate.proxy.relay import Upstream
from regogate.proxy.state import RateLimitStore, open_store

__all__ = ["Gate", "approvals_flag", "open_gate"]

log = logging.getLogger("regogate")


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


@dataclass(frozen=True)
class Gate:
    """What a face needs from the running gate."""

    gateway: PolicyGateway
    """Decides every call (for the process's principal, or ``acting_for`` a client's)."""
    checked: OfferedToolsCheck
    """``gateway`` plus a check of the policy's tool names against the server's first ``tools/list``."""
    opa: OpaClient
    store: RateLimitStore
    audit: AuditLog
    upstream: Upstream | None = None
    """The server process, when ``open_gate`` was asked to start it (its start overlaps OPA's)."""


@asynccontextmanager
async def open_gate(config: RunConfig, *, spawn_upstream: bool = False, **start: object) -> AsyncIterator[Gate]:
    """Open the gate (``start`` adds fields to the audit ``start`` event); reloads and OPA's supervision run
    until the block ends. ``spawn_upstream``: also start ``config.upstream`` (a command) while OPA starts.

    Raises:
        RegogateError: the policy, OPA, the store or the audit log cannot be set up (one line says which).
    """
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
            if spawn_upstream and config.target is None:
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
                # Absolute: `regogate status` reads it back from any directory.
                policy=os.path.abspath(config.policy),
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
                **start,
            )
            checked = OfferedToolsCheck(gateway, source.policy, audit)
            async with anyio.create_task_group() as tg:
                tg.start_soon(tracker.run)
                if sidecar is not None:
                    tg.start_soon(watch_policy, source, sidecar, gateway, audit, tracker, checked.policy_loaded)
                    tg.start_soon(supervise_opa, sidecar, audit)
                yield Gate(gateway=gateway, checked=checked, opa=client, store=store, audit=audit, upstream=upstream)
                tg.cancel_scope.cancel()
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
