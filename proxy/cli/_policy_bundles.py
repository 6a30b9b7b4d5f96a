"""A policy given with ``-c`` as the bundle directories OPA loads: a converted YAML file, or Rego.

A YAML policy becomes its converted bundle plus regogate's gate. A directory of hand-written Rego
is loaded as it is when one of its files declares ``package regogate.gate``; otherwise the gate goes
with it: as a bundle of its own beside a directory whose ``.manifest`` names its roots, or copied
into a private copy of a directory without one (such a bundle owns all of ``data``, so no other
bundle may load beside it).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from regogate.converters import Policy, gate_bundle, load_policy, policy_bundle, write_bundle
from regogate.core import ConfigError

_GATE_PACKAGE: Final = re.compile(r"^\s*package\s+regogate\.gate\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PolicyBundles:
    """The bundle directories for one policy, and what is known about it."""

    bundles: tuple[Path, ...]
    server_id: str
    policy: Policy | None
    """The YAML policy; ``None`` for hand-written Rego."""
    revision: str


def provides_gate(directory: Path) -> bool:
    """Whether a Rego directory declares ``package regogate.gate`` itself."""
    for path in sorted(directory.rglob("*.rego")):
        if path.name.endswith("_test.rego"):
            continue
        try:
            if _GATE_PACKAGE.search(path.read_text(encoding="utf-8", errors="replace")):
                return True
        except OSError:
            continue
    return False


def rego_dir_bundles(directory: Path, target: Path) -> list[Path]:
    """The bundle directories for hand-written Rego, the gate included; written under ``target``."""
    if provides_gate(directory):
        return [directory]
    gate = gate_bundle(tests=False)
    if (directory / ".manifest").is_file():
        write_bundle(gate, target / "gate")
        return [directory, target / "gate"]
    # The copy keeps the directory's name: it is the bundle's name in data.system.bundles.
    merged = target / directory.name
    shutil.copytree(directory, merged, symlinks=False)
    for name, content in gate.files.items():
        if name != ".manifest":
            (merged / name).parent.mkdir(parents=True, exist_ok=True)
            (merged / name).write_bytes(content)
    return [merged]


def policy_bundles(path: Path, server_id: str | None, workdir: Path) -> PolicyBundles:
    """Write the bundles for ``path`` under ``workdir`` (a private directory the caller removes).

    Raises:
        PolicySourceError: the YAML policy is invalid.
        ConfigError: a Rego directory without ``server_id``, or a path that is neither.
    """
    gate = workdir / "gate"
    if path.is_dir():
        if not server_id:
            raise ConfigError(f"{path}: a Rego directory needs --server-id (the id its policies use)")
        return PolicyBundles(tuple(rego_dir_bundles(path, workdir)), server_id, None, "hand-written")
    if not path.is_file():
        raise ConfigError(f"{path}: no such policy file or Rego directory")
    policy = load_policy(path, server_id=server_id)
    bundle = policy_bundle(policy, path.read_text(encoding="utf-8"), tests=False)
    # The directory's name is the bundle's name in data.system.bundles: the server id.
    policy_dir = workdir / "policies" / policy.server_id
    write_bundle(bundle, policy_dir)
    write_bundle(gate_bundle(tests=False), gate)
    return PolicyBundles((gate, policy_dir), policy.server_id, policy, bundle.revision)
