"""The policy behind ``regogate run``: its bundles in a private directory, rebuilt and reloaded on edits."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path

import anyio

from regogate.converters import (
    Policy,
    default_server_id,
    gate_bundle,
    load_policy,
    parse_policy,
    policy_bundle,
    write_bundle,
)
from regogate.core import ConfigError, PolicySourceError, Problem, RegogateError
from regogate.proxy.cli._policy_bundles import rego_dir_bundles
from regogate.proxy.cli._run_config import RunConfig
from regogate.proxy.cli._stable_read import FileKey, Snapshot, file_key, read_when_stable
from regogate.proxy.policy import AuditLog, EmbeddedOpa, PolicyGateway, RevisionTracker

__all__ = ["RELOAD_POLL_SECONDS", "PolicySource", "watch_policy"]

log = logging.getLogger("regogate")

#: How often the policy file is checked for edits; an edit takes effect within this.
RELOAD_POLL_SECONDS = 0.5


class PolicySource:
    """The policy file and the bundles made from it, in a private directory."""

    def __init__(self, config: RunConfig, workdir: Path, *, extra: Sequence[Path] = ()) -> None:
        """``extra`` bundles (the decision-log mask) load next to the policy's, unchanged by edits."""
        self.config = config
        self.workdir = workdir
        self.extra = list(extra)
        self.generation = 0
        self.policy: Policy | None = None
        self.revision = "hand-written"
        self.mtime = 0.0
        self.key: FileKey | None = None
        self.server_id = config.server_id or ""

    def build(self, snapshot: Snapshot | None = None) -> list[Path]:
        """Convert (or copy) the policy into fresh bundle directories; raises on an invalid policy.

        ``snapshot`` is the file's content as read once it was stable (a reload); without it the file
        is read now (start-up). Validation and the bundle use the same bytes.
        """
        self.generation += 1
        target = self.workdir / f"gen{self.generation}"
        self.mtime = _mtime(self.config.policy)
        if self.config.policy.is_dir():
            if not self.config.server_id:
                raise ConfigError("a Rego directory needs --server-id (the id its policies use)")
            return [*rego_dir_bundles(self.config.policy, target), *self.extra]
        path = str(self.config.policy)
        if snapshot is None:
            self.key = file_key(self.config.policy)
            policy = load_policy(self.config.policy, server_id=self.config.server_id)
            text = self.config.policy.read_text(encoding="utf-8")
        else:
            self.key = snapshot.key
            try:
                text = snapshot.data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PolicySourceError([Problem(path, 1, 1, "", f"not UTF-8: {exc}")]) from None
            server_id = self.config.server_id or default_server_id(path)
            policy = parse_policy(text, source=path, server_id=server_id)
        # The bundle names the file, not the path it was reached by: the same policy gets the same
        # revision however -c spelled it, and no local directory leaks into the bundle.
        named = replace(policy, source=self.config.policy.name)
        bundle = policy_bundle(named, text, tests=False)
        # The directory's name is the bundle's name in data.system.bundles: the server id.
        policy_dir = target / "policies" / policy.server_id
        write_bundle(bundle, policy_dir)
        write_bundle(gate_bundle(tests=False), target / "gate")
        self.policy, self.revision, self.server_id = policy, bundle.revision, policy.server_id
        return [target / "gate", policy_dir, *self.extra]

    def changed(self) -> bool:
        if self.config.policy.is_dir():
            return _mtime(self.config.policy) != self.mtime
        return file_key(self.config.policy) != self.key


def _swap_opa(sidecar: EmbeddedOpa, bundles: list[Path]) -> Callable[[Callable[[], None]], Awaitable[None]]:
    """``PolicyGateway.reload``'s way to put the new OPA in force: the sidecar's reload to ``bundles``."""
    return lambda switch: sidecar.reload(bundles, on_switch=switch)


def _mtime(path: Path) -> float:
    try:
        if path.is_dir():
            return max((p.stat().st_mtime for p in path.rglob("*.rego")), default=0.0)
        return path.stat().st_mtime
    except OSError:
        return 0.0


async def watch_policy(
    source: PolicySource,
    sidecar: EmbeddedOpa,
    gateway: PolicyGateway,
    audit: AuditLog,
    tracker: RevisionTracker,
    on_reload: Callable[[Policy | None], None] | None = None,
) -> None:
    """Reload the sidecar when the policy file changes; an invalid edit keeps the old policy.

    ``on_reload`` hears of each policy put in force (after it is logged and audited).
    """
    while True:
        await anyio.sleep(RELOAD_POLL_SECONDS)
        if not source.changed():
            continue
        snapshot = None
        if not source.config.policy.is_dir():
            # Never a half-written file: wait until nobody writes it and it holds still.
            snapshot = await read_when_stable(source.config.policy)
            if snapshot is None or snapshot.key == source.key:
                continue
        try:
            bundles = source.build(snapshot)
            # One swap as the relay sees it: the new OPA and the counters its policy reads change together.
            await gateway.reload(source.policy, _swap_opa(sidecar, bundles))
        except PolicySourceError as exc:
            for problem in exc.problems:
                log.error("policy edit rejected, the previous policy stays in force: %s", problem)
            audit.write("reload", ok=False, errors=[str(p) for p in exc.problems])
            continue
        except RegogateError as exc:
            log.error("reload failed, the previous policy stays in force: %s", exc)
            audit.write("reload", ok=False, errors=[str(exc)])
            continue
        log.warning("policy reloaded: revision %s", source.revision)
        revisions = await tracker.refresh()
        audit.write("reload", ok=True, revision=source.revision, revisions=revisions)
        if on_reload is not None:
            on_reload(source.policy)
