"""Where regogate keeps what outlives one process: ``$XDG_STATE_HOME/regogate`` (``~/.local/state/regogate``).

One directory per server id beneath it holds that server's audit log (and whatever else is kept
per server). Directories are created private (0700): audit events name tools and rules.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

__all__ = ["AUDIT_FILE", "audit_log_path", "server_state_dir", "state_dir"]

#: The audit log's file name inside a server's state directory.
AUDIT_FILE: Final = "audit.jsonl"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")


def state_dir(override: str | Path | None = None) -> Path:
    """regogate's state directory: ``override`` (``--state-dir``), else ``$XDG_STATE_HOME/regogate``.

    Nothing is created; callers make what they write into.
    """
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "regogate"


def server_state_dir(server_id: str, override: str | Path | None = None) -> Path:
    """The directory of one server id (made safe as a single path component)."""
    name = _UNSAFE.sub("_", server_id).strip(".") or "_"
    return state_dir(override) / name


def audit_log_path(server_id: str, override: str | Path | None = None) -> Path:
    """Where a server's audit log goes by default."""
    return server_state_dir(server_id, override) / AUDIT_FILE
