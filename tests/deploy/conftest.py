"""Fixtures for the deployment tests: a real nginx bundle server, signing keys, a decision-log collector."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from regogate.converters import Bundle, gate_bundle, load_policy, mask_bundle, policy_bundle, sign_bundle, write_bundle
from tests.conftest import POLICIES, ROOT, free_tcp_port, stop_process

DEPLOY = ROOT / "deploy"
#: nginx listens within milliseconds; the rest is CI slack.
NGINX_START_TIMEOUT = 10.0
#: How long nginx may take to exit on SIGQUIT (graceful) before it is killed.
NGINX_STOP_TIMEOUT = 5.0
SETUP_HINT = "run scripts/setup-bundle-server.sh (Debian's nginx-light and docker-compose)"
#: Tests poll bundles every second; the deployed configs poll every 10-20 s.
FAST_POLLING = ("min_delay_seconds=1", "max_delay_seconds=1")
BUNDLE_NAMES = ("gate", "python", "mask")


def find_nginx() -> str:
    """Debian's nginx; the tests never run without it."""
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"no nginx: {SETUP_HINT}")


def find_docker_compose() -> list[str]:
    """A real compose parser: Debian's docker-compose, or the docker CLI's compose plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    raise RuntimeError(f"no compose parser: {SETUP_HINT}")


@dataclass
class BundleServer:
    """nginx serving ``root`` at ``url``, with ``deploy/nginx/bundles.conf``'s location rules."""

    url: str
    root: Path
    access_log: Path
    _mtimes: dict[str, int] = field(default_factory=dict)

    def publish(self, name: str, bundle: Bundle) -> Path:
        """Write ``<name>.tar.gz`` atomically, with a fresh ETag.

        nginx's ETag is the file's mtime (in seconds) and size; two publications within a second
        of the same size would look unchanged, so each one moves the mtime on by at least a second.
        """
        path = self.root / f"{name}.tar.gz"
        write_bundle(bundle, path)
        stamp = max(int(time.time()), self._mtimes.get(name, 0) + 1)
        os.utime(path, (stamp, stamp))
        self._mtimes[name] = stamp
        return path

    def publish_raw(self, name: str, data: bytes) -> None:
        """Publish bytes as they are (a tampered bundle)."""
        path = self.root / f"{name}.tar.gz"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)
        stamp = max(int(time.time()), self._mtimes.get(name, 0) + 1)
        os.utime(tmp, (stamp, stamp))
        os.replace(tmp, path)
        self._mtimes[name] = stamp

    def withdraw(self, name: str) -> None:
        (self.root / f"{name}.tar.gz").unlink(missing_ok=True)

    def statuses(self, name: str) -> list[int]:
        """The HTTP status of every request for ``<name>.tar.gz`` so far."""
        out = []
        for line in self.access_log.read_text(encoding="utf-8").splitlines():
            if f"/bundles/{name}.tar.gz " in line:
                out.append(int(line.split('" ', 1)[1].split()[0]))
        return out


def _nginx_conf(run: Path, www: Path, port: int) -> Path:
    site = (DEPLOY / "nginx" / "bundles.conf").read_text(encoding="utf-8")
    assert "listen 80;" in site and "root /usr/share/nginx/html;" in site
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};").replace(
        "root /usr/share/nginx/html;", f"root {www};"
    )
    (run / "bundles.conf").write_text(site, encoding="utf-8")
    # As root, nginx's workers would drop to `nobody`, who cannot enter pytest's private tmp dirs.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"  {kind}_temp_path {run}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = run / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {run}/nginx.pid;\nerror_log {run}/error.log warn;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n  types {{ application/gzip gz; }}\n  access_log {run}/access.log;\n{temp}"
        f"  include {run}/bundles.conf;\n}}\n",
        encoding="utf-8",
    )
    return conf


@pytest.fixture
def bundle_server(tmp_path: Path) -> Iterator[BundleServer]:
    """A real nginx on a loopback port serving ``/bundles/`` from a temp dir."""
    run, www = tmp_path / "nginx", tmp_path / "www"
    (www / "bundles").mkdir(parents=True)
    run.mkdir()
    port = free_tcp_port()
    conf = _nginx_conf(run, www, port)
    process = subprocess.Popen(
        [find_nginx(), "-c", str(conf), "-e", str(run / "error.log"), "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    server = BundleServer(url=f"http://127.0.0.1:{port}/bundles", root=www / "bundles", access_log=run / "access.log")
    try:
        deadline = time.monotonic() + NGINX_START_TIMEOUT
        while True:
            with suppress(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
                break
            error_log = run / "error.log"
            assert process.poll() is None, f"nginx exited: {error_log.read_text() if error_log.exists() else ''}"
            assert time.monotonic() < deadline, "nginx did not listen in time"
            time.sleep(0.02)
        yield server
    finally:
        stop_process(process, signal.SIGQUIT, NGINX_STOP_TIMEOUT)


@dataclass(frozen=True)
class SigningKeys:
    private: Path
    public: Path


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKeys:
    """An RSA key pair in PEM, made by openssl as the docs say."""
    keys = tmp_path_factory.mktemp("keys")
    private, public = keys / "bundle-signing.pem", keys / "bundle-signing.pub.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(private)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True, timeout=60)
    return SigningKeys(private=private, public=public)


def python_policy(tmp_path: Path, *, frozen_black: bool = False) -> Path:
    """The seed policy; with ``frozen_black`` its ``black`` tool is denied (a new revision)."""
    text = (POLICIES / "python.yaml").read_text(encoding="utf-8")
    if frozen_black:
        text = text.replace(
            "  black:\n    rules:\n      - action: allow\n        rate_limit: 60/minute\n",
            '  black:\n    rules:\n      - action: deny\n        on_deny: "black is frozen for the release"\n',
        )
        assert "black is frozen" in text
    path = tmp_path / ("python-frozen.yaml" if frozen_black else "python.yaml")
    path.write_text(text, encoding="utf-8")
    return path


def python_bundle(policy: Path) -> Bundle:
    return policy_bundle(load_policy(policy, server_id="python"), policy.read_text(encoding="utf-8"))


def publish_all(
    server: BundleServer, policy: Path, *, log_args: str = "hash", keys: SigningKeys | None = None, opa_bin: str = ""
) -> dict[str, Bundle]:
    """Publish the gate, the policy (as ``python``) and the mask, signed with ``keys`` when given."""
    bundles = {"gate": gate_bundle(), "python": python_bundle(policy), "mask": mask_bundle(log_args)}
    for name, bundle in bundles.items():
        if keys is not None:
            bundle = sign_bundle(bundle, opa_bin=opa_bin, signing_key=keys.private)
        server.publish(name, bundle)
    return bundles


def compose_opa(files: Sequence[str], env: Mapping[str, str], *, volumes: Mapping[str, Path]) -> list[str]:
    """The OPA service's arguments as the compose files say, for a local ``opa run``.

    ``docker-compose config`` (a real compose parser) resolves the files; container paths are mapped
    back to host paths through ``volumes`` (container dir -> host dir). The server flags the test
    harness sets itself (``run``, ``--server``, ``--addr``, ``--skip-version-check``) are left out.
    """
    argv = [*find_docker_compose(), *[a for f in files for a in ("-f", str(ROOT / f))], "config"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    service = yaml.safe_load(done.stdout)["services"]["opa"]
    out = []
    for arg in service["command"]:
        if arg in ("run", "--server", "--skip-version-check") or arg.startswith("--addr"):
            continue
        for inside, outside in volumes.items():
            arg = arg.replace(inside, str(outside))
        out.append(arg)
    return out


def fast_polling(names: Sequence[str] = BUNDLE_NAMES) -> list[str]:
    return [a for n in names for s in FAST_POLLING for a in ("--set", f"bundles.{n}.polling.{s}")]


def audit_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class Collector:
    """A decision-log collector: accepts OPA's gzipped JSON arrays on ``POST /logs``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with collector.lock:
                    collector.events.extend(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)


@pytest.fixture
def collector() -> Iterator[Collector]:
    sink = Collector()
    sink.thread.start()
    try:
        yield sink
    finally:
        sink.server.shutdown()
        sink.server.server_close()
