"""A policy given with ``-c`` as the bundle directories OPA loads: a converted YAML file, or Rego.

A YAML policy becomes its converted bundle plus regogate's gate. A directory of hand-written Rego
is loaded as it is, plus the gate unless one of its files declares ``package regogate.gate``.
"""

from __future__ import annotations

import re
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
        extra = () if provides_gate(path) else (gate,)
        if extra:
            write_bundle(gate_bundle(), gate)
        return PolicyBundles((path, *extra), server_id, None, "hand-written")
    if not path.is_file():
        raise ConfigError(f"{path}: no such policy file or Rego directory")
    policy = load_policy(path, server_id=server_id)
    bundle = policy_bundle(policy, path.read_text(encoding="utf-8"))
    # The directory's name is the bundle's name in data.system.bundles: the server id.
    policy_dir = workdir / "policies" / policy.server_id
    write_bundle(bundle, policy_dir)
    write_bundle(gate_bundle(), gate)
    return PolicyBundles((gate, policy_dir), policy.server_id, policy, bundle.revision)
