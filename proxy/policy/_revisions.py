"""OPA's bundles as regogate sees them: ready at start-up, which revisions are active, and when they are lost.

regogate reads ``data.system.bundles`` at start-up and every ``REVISION_POLL_SECONDS``, keeps the
revisions for the gateway to stamp on every decision event, and writes a ``bundles`` event when they change (an
external OPA pulled a new bundle) or when OPA stops reporting its bundles active (``ok: false``).
OPA's own decision log carries the exact revisions of each decision under ``bundles``, and its
``decision_id`` is the audit event's, so the two logs join per call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

import anyio

from regogate.core import ConfigError, DecisionError
from regogate.proxy.policy._audit import AuditLog
from regogate.proxy.policy._opa_client import OpaClient

__all__ = [
    "BUNDLES_PATH",
    "REVISION_POLL_SECONDS",
    "RevisionTracker",
    "read_revisions",
    "wait_for_bundles",
]

log = logging.getLogger(__name__)

#: How often an external OPA's ``/health?bundles`` is probed at start-up; each probe is one local GET.
OPA_READY_POLL_SECONDS: Final = 0.1
#: How often the active bundle revisions are read; a new bundle shows in the audit log within this.
REVISION_POLL_SECONDS: Final = 1.0
#: Where OPA keeps the manifest of every activated bundle.
BUNDLES_PATH: Final = "system/bundles"


async def wait_for_bundles(client: OpaClient, timeout: float) -> None:
    """Return once OPA answers ``GET /health?bundles`` with 200: every configured bundle is active.

    Raises:
        ConfigError: not within ``timeout`` seconds; says whether OPA was unreachable or bundle-less.
    """
    with anyio.move_on_after(timeout):
        while not await client.health(bundles=True):
            await anyio.sleep(OPA_READY_POLL_SECONDS)
        return
    try:
        await client.version()
    except DecisionError as exc:
        reason = f"cannot be reached ({exc.detail})"
    else:
        reason = (
            "answers, but GET /health?bundles is not 200: its bundles are not active "
            "(is its bundle server reachable, and do the bundles' signatures verify?)"
        )
    raise ConfigError(f"OPA at {client.url} was not ready within {timeout:g} s: it {reason}; nothing was started")


def _bundle_name(name: str) -> str:
    """A bundle's name as configured; the embedded OPA names bundles by their directory."""
    return name.rstrip("/").rsplit("/", 1)[-1] if "/" in name else name


async def read_revisions(client: OpaClient) -> dict[str, str]:
    """The revision of each bundle OPA has active, by bundle name, from ``data.system.bundles``.

    Raises:
        DecisionError: OPA cannot be asked, or its answer is not the expected object.
    """
    result, _ = await client.evaluate(BUNDLES_PATH, {})
    if not isinstance(result, dict):
        raise DecisionError("decision_malformed", f"data.system.bundles is not an object: {result!r}")
    revisions: dict[str, str] = {}
    for name, entry in sorted(result.items()):
        manifest = entry.get("manifest") if isinstance(entry, dict) else None
        revision = manifest.get("revision") if isinstance(manifest, dict) else None
        revisions[_bundle_name(str(name))] = revision if isinstance(revision, str) else ""
    return revisions


class RevisionTracker:
    """Reads the active revisions and OPA's bundle health; records every change in the audit log."""

    def __init__(self, client: OpaClient, audit: AuditLog) -> None:
        self._client = client
        self._audit = audit
        self._revisions: Mapping[str, str] = {}
        self.healthy = True

    def active(self) -> Mapping[str, str]:
        """The revisions OPA last reported active (``{}`` while its bundles are not); decisions carry them."""
        return self._revisions

    async def refresh(self) -> Mapping[str, str]:
        """Read the revisions now; a change (or lost health) is logged and audited. Never raises."""
        healthy = await self._client.health(bundles=True)
        try:
            revisions = await read_revisions(self._client) if healthy else {}
        except DecisionError as exc:
            log.error("cannot read OPA's active bundles: %s", exc)
            healthy, revisions = False, {}
        if not healthy:
            if self.healthy:
                log.error(
                    "OPA at %s reports its bundles not active (GET /health?bundles); calls are denied "
                    "while its decisions are undefined",
                    self._client.url,
                )
                self._audit.write("bundles", ok=False, revisions={})
            self.healthy = False
            self._revisions = {}
            return self._revisions
        if not self.healthy or revisions != self._revisions:
            previous = self._revisions
            self._revisions = revisions
            if previous or not self.healthy:
                log.warning("OPA activated bundle revisions %s", revisions)
                self._audit.write("bundles", ok=True, revisions=revisions, previous=previous)
        self.healthy = True
        return revisions

    async def run(self) -> None:
        """Refresh every ``REVISION_POLL_SECONDS`` until cancelled."""
        while True:
            await anyio.sleep(REVISION_POLL_SECONDS)
            await self.refresh()
