"""Running the installed ``regogate`` command as a user would, with a private state directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, find_opa_binary

REGOGATE = str(Path(sys.executable).parent / "regogate")
EVERYTHING = str(ROOT / "tests/servers/node_modules/.bin/mcp-server-everything")
TIME_SERVER = str(ROOT / ".venv-servers/bin/mcp-server-time")
#: Bound on one command; a scan starts a Node server, which takes a second or two.
COMMAND_TIMEOUT = 60


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


class Cli:
    """Runs ``regogate ARGS`` in ``tmp_path`` with the real OPA and ``XDG_STATE_HOME`` inside it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        self.env = {**os.environ, "REGOGATE_OPA": find_opa_binary(), "XDG_STATE_HOME": str(self.state)}

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [REGOGATE, *args],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            cwd=self.tmp,
            env={**self.env, **(env or {})},
        )
