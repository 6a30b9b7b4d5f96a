"""Which OPA regogate wants, and how a user without one gets it (for error messages and ``doctor``)."""

from __future__ import annotations

import platform
import re
from typing import Final

__all__ = ["MIN_OPA_VERSION", "OPA_VERSION", "how_to_get_opa", "parse_opa_version", "release_url"]

#: The OPA release regogate is tested with (the one ``make setup`` builds).
OPA_VERSION: Final = "1.22.2"
#: The oldest OPA regogate supports: Rego v1 by default, ``/health?bundles``, unix-socket listeners.
MIN_OPA_VERSION: Final = (1, 0, 0)

_MACHINES: Final = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_VERSION: Final = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def release_url(system: str | None = None, machine: str | None = None) -> str | None:
    """The official release binary for this platform (or the one named), ``None`` where OPA ships none."""
    os_name = (system or platform.system()).lower()
    arch = _MACHINES.get((machine or platform.machine()).lower())
    if arch is None or os_name not in ("linux", "darwin", "windows"):
        return None
    base = f"https://openpolicyagent.org/downloads/v{OPA_VERSION}/opa_{os_name}_{arch}"
    if os_name == "windows":
        return base + ".exe" if arch == "amd64" else None
    # The static Linux build runs on any libc; macOS ships a static build for arm64 only.
    if os_name == "linux" or arch == "arm64":
        return base + "_static"
    return base


def how_to_get_opa() -> str:
    """Every way to get an ``opa`` binary, as indented lines, ending with where to check the result."""
    url = release_url()
    lines = ["get OPA (v1.0.0 or newer; regogate is tested with v" + OPA_VERSION + ") in any of these ways:"]
    if url is not None:
        lines.append(f"  - the official release binary: curl -L -o ~/.local/bin/opa {url} && chmod +x ~/.local/bin/opa")
    else:
        lines.append(
            f"  - an official release binary: https://github.com/open-policy-agent/opa/releases/tag/v{OPA_VERSION}"
        )
    lines += [
        f"  - the OPA container image: docker create --name opa-bin openpolicyagent/opa:{OPA_VERSION}-static && "
        "docker cp opa-bin:/opa ~/.local/bin/opa && docker rm opa-bin (or run it as a server and pass --opa-url)",
        "  - a package manager: brew install opa",
        f"  - Go: go install github.com/open-policy-agent/opa@v{OPA_VERSION}",
        "then put it on PATH, or point regogate at it with REGOGATE_OPA=/path/to/opa or --opa-bin; "
        "`regogate doctor` checks what regogate finds",
    ]
    return "\n".join(lines)


def parse_opa_version(text: str) -> tuple[int, int, int] | None:
    """The ``(major, minor, patch)`` in ``opa version`` output (``Version: 1.22.2``), if any."""
    for line in text.splitlines():
        if line.strip().lower().startswith("version:"):
            match = _VERSION.search(line)
            if match:
                return int(match[1]), int(match[2]), int(match[3])
    return None
