"""docs/deployment.md's "Without Docker" steps, run as written: Debian's nginx serves the bundles the
doc builds, OPA pulls them through it, and a gated session decides with them.

Only what would touch the machine is swapped: ``sudo`` is a no-op wrapper (tests run as root),
``/etc/nginx/conf.d/`` is a private directory that a private copy of Debian's main ``nginx.conf``
includes, and the doc's ports 8282 and 8181 are free loopback ports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import anyio
import httpx
import pytest

from tests.conftest import ROOT, find_opa_binary, free_tcp_port
from tests.deploy.conftest import audit_events
from tests.deploy.test_docs_commands import _block
from tests.e2e.harness import REGOGATE, STANDIN, gated_session, text

pytestmark = pytest.mark.anyio

#: OPA's first download of every bundle happens at start; the rest is CI slack.
BUNDLES_TIMEOUT = 30.0
#: A daemonised nginx or OPA's shell gets this long to go after a signal.
STOP_TIMEOUT = 5.0
SESSION_TIMEOUT = 30
COMMAND_TIMEOUT = 60


def _main_conf(etc: Path, run: Path) -> Path:
    """Debian's main nginx.conf in miniature: its mime types and ``include <etc>/conf.d/*.conf``, all paths private."""
    # As root, Debian's `user www-data` workers could not enter pytest's private tmp dirs (the doc's caveat).
    temp = "".join(f"  {k}_temp_path {run}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = etc / "nginx.conf"
    conf.write_text(
        f"user root root;\nworker_processes 1;\npid {run}/nginx.pid;\nerror_log {run}/error.log warn;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  access_log {run}/access.log;\n{temp}"
        f"  include {etc}/conf.d/*.conf;\n}}\n",
        encoding="utf-8",
    )
    return conf


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@contextmanager
def _nginx_stopped_after(pid_file: Path) -> Iterator[None]:
    """Stop the nginx the doc daemonised (its pid file names it), gracefully, then for sure."""
    try:
        yield
    finally:
        with suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(pid_file.read_text(encoding="utf-8"))
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + STOP_TIMEOUT
            while not _gone(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def _manifest_revision(bundle: Path) -> str:
    with tarfile.open(bundle) as tar:
        (name,) = [n for n in tar.getnames() if n.lstrip("./") == "manifest" or n.endswith("/.manifest")]
        member = tar.extractfile(name)
        assert member is not None
        return str(json.load(member)["revision"])


async def test_the_debian_nginx_steps_serve_the_bundles_opa_pulls_for_a_gated_session(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    for part in ("policies", "deploy"):
        shutil.copytree(ROOT / part, checkout / part)
    (checkout / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup-bundle-server.sh", checkout / "scripts")
    etc, run, tools = tmp_path / "etc-nginx", tmp_path / "nginx-run", tmp_path / "bin"
    for directory in (etc / "conf.d", run, tools):
        directory.mkdir(parents=True)
    (tools / "opa").symlink_to(find_opa_binary())
    main_conf = _main_conf(etc, run)
    nginx_port, opa_port = free_tcp_port(), free_tcp_port()
    prelude = f'sudo() {{ "$@"; }}\nnginx() {{ command nginx -c {main_conf} -e {run}/error.log "$@"; }}\n'
    env = {**os.environ, "PATH": f"{tools}:{Path(REGOGATE).parent}:{os.environ['PATH']}"}

    def as_written(block: str) -> str:
        swapped = block.replace("8282", str(nginx_port)).replace("8181", str(opa_port))
        return prelude + swapped.replace("/etc/nginx/conf.d/", f"{etc}/conf.d/")

    build = _block("docker compose up -d").replace("docker compose up -d\n", "")
    built = _bash(build, checkout, env)
    assert built.returncode == 0, built.stderr
    served = _bash(as_written(_block("regogate-bundles.conf")), checkout, env)
    with _nginx_stopped_after(run / "nginx.pid"):
        assert served.returncode == 0, served.stderr + (run / "error.log").read_text(encoding="utf-8")
        assert "syntax is ok" in served.stderr and "test is successful" in served.stderr
        head = served.stdout.splitlines()
        assert head[0].startswith("HTTP/1.1 200") and any(line.lower().startswith("etag:") for line in head)
        opa_block = as_written(_block("scripts/setup-bundle-server.sh"))
        opa = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", opa_block],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            opa_url = f"http://127.0.0.1:{opa_port}"
            deadline = time.monotonic() + BUNDLES_TIMEOUT
            while True:
                with suppress(httpx.TransportError):
                    if httpx.get(f"{opa_url}/health?bundles", timeout=1.0).status_code == 200:
                        break
                assert opa.poll() is None, "OPA from the doc's command exited"
                assert time.monotonic() < deadline, "OPA never activated the bundles nginx serves"
                await anyio.sleep(0.1)
            audit = tmp_path / "audit.jsonl"
            policy = checkout / "policies" / "python.yaml"
            flags = ("--opa-url", opa_url, "--state", "memory", "--audit-log", str(audit))
            with anyio.fail_after(SESSION_TIMEOUT):
                async with gated_session(policy, STANDIN, *flags) as session:
                    black = await session.call_tool("black", {"path": "."})
                    conda = await session.call_tool("conda", {"command": "remove numpy"})
        finally:
            with suppress(ProcessLookupError):
                os.killpg(opa.pid, signal.SIGTERM)
            opa.wait(STOP_TIMEOUT)
        access = (run / "access.log").read_text(encoding="utf-8")
    assert not black.is_error
    assert text(conda).startswith("[POLICY DENIED] ")
    # The decisions were OPA's, with the very bundle the doc built and nginx served.
    decisions = [e for e in audit_events(audit) if e["event"] == "decision"]
    revision = _manifest_revision(checkout / "build" / "bundles" / "python.tar.gz")
    assert [(d["tool"], d["allow"], d["revisions"]["python"]) for d in decisions] == [
        ("black", True, revision),
        ("conda", False, revision),
    ]
    # curl's check was a HEAD; OPA's download is the GET.
    pulls = [line for line in access.splitlines() if '"GET /bundles/python.tar.gz ' in line]
    assert pulls and '" 200 ' in pulls[0]
