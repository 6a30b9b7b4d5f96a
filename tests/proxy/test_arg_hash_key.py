"""The installation's argument-hash key: made once, whole, even when many regogate processes start at once."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from regogate.proxy.policy import load_key
from regogate.proxy.policy._arg_hash import ArgumentHasher

RACERS = 12
# Each racer waits for the go file, then loads (and perhaps creates) the key and prints it.
RACER = """
import os, sys, time
from pathlib import Path
from regogate.proxy.policy import load_key
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
print(load_key(Path(sys.argv[1])).hex())
"""


def test_processes_starting_together_never_read_a_half_written_key_and_agree_on_one(tmp_path: Path) -> None:
    key_path, go = tmp_path / "state" / "args-hash.key", tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(key_path), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(RACERS)
    ]
    go.touch()
    outcomes = [racer.communicate(timeout=60) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), [err for _, err in outcomes]
    assert len({out for out, _ in outcomes}) == 1  # one key for every process
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert [p.name for p in key_path.parent.iterdir()] == ["args-hash.key"]  # no temporary file left
    assert load_key(key_path).hex() + "\n" == outcomes[0][0]


def test_an_arguments_hash_is_hmac_sha256_of_their_sorted_compact_utf8_json() -> None:
    """Pinned: every audit log's ``args_hash`` and every approval's digest depend on this exact value."""
    arguments = {"path": "/tmp/é", "n": [1, 2.5, None], "a": {"z": True}}
    digest = ArgumentHasher(b"k" * 32).digest(arguments)
    assert digest == "hmac-sha256:61a1b233d3c1e07371fde20250f0136f9289549ca9fb5bbd7c3b8bf2c75e22f6"
