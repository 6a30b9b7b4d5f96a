"""`regogate serve --auth jwt --jwks URL`: keys fetched over HTTP(S) from a JWKS host the test runs on loopback.

The host is a stdlib HTTP server in a thread whose answer the test changes (keys added, garbage, an
error), and which counts the fetches: rotation must be picked up, a JWKS that breaks must fail closed
with one clear log line, and forged key ids must not make the gateway hammer the host.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import find_opa_binary
from tests.e2e.harness import EVERYTHING_SERVER, REGOGATE, text
from tests.e2e.serve_harness import HEADERS, INITIALIZE, mcp_session, serve
from tests.http_servers import free_port
from tests.loopback_tls import loopback_certificate

pytestmark = pytest.mark.anyio

TIMEOUT = 90  # one whole test; seconds, slack for a loaded CI machine
ISSUER = "https://idp.example.test/"
AUDIENCE = "https://gateway.example.test/mcp"
POLICY = 'version: "1"\nhide: [get-env]\n'


class JwksHost:
    """A JWKS on loopback: what it answers is set by the test; ``hits`` counts the fetches."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.status = 200
        self.body = b'{"keys": []}'
        self.hits = 0
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.hits += 1
                self.send_response(host.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(host.body)))
                self.end_headers()
                self.wfile.write(host.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}/jwks.json"

    def serve(self, keys: dict[str, rsa.RSAPrivateKey]) -> None:
        entries = []
        for kid, key in keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            entries.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        self.status, self.body = 200, json.dumps({"keys": entries}).encode()

    @contextmanager
    def running(self) -> Iterator[JwksHost]:
        thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token(sub: str, key: rsa.RSAPrivateKey, kid: str) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def jwt_flags(url: str) -> tuple[str, ...]:
    return ("--auth", "jwt", "--jwks", url, "--issuer", ISSUER, "--audience", AUDIENCE)


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def loopback_ca(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A TLS context for a server on 127.0.0.1, and the certificate file a client trusts for it."""
    cert_file, key_file = loopback_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


async def test_keys_over_https_are_used_rotated_in_and_forged_kids_do_not_hammer_the_host(tmp_path: Path) -> None:
    tls, ca_file = loopback_ca(tmp_path)
    old, rotated = new_key(), new_key()
    with JwksHost(tls).running() as host:
        host.serve({"k1": old})
        flags = ("--state", "memory", *jwt_flags(host.url))
        with serve(policy_file(tmp_path), *flags, env={"SSL_CERT_FILE": str(ca_file)}) as gw:
            assert host.hits == 1  # read once at start
            with anyio.fail_after(TIMEOUT):
                async with mcp_session(gw.url, {"authorization": f"Bearer {token('alice', old, 'k1')}"}) as session:
                    before = text(await session.call_tool("echo", {"message": "old key"}))
                assert host.hits == 1  # a known key needs no fetch

                host.serve({"k1": old, "k2": rotated})  # the issuer rotates
                async with mcp_session(gw.url, {"authorization": f"Bearer {token('bob', rotated, 'k2')}"}) as session:
                    after = text(await session.call_tool("echo", {"message": "new key"}))
                assert host.hits == 2

                async with httpx.AsyncClient(timeout=30) as http:
                    for n in range(20):
                        forged = token("mallory", new_key(), f"forged-{n}")
                        headers = {**HEADERS, "authorization": f"Bearer {forged}"}
                        refused = await http.post(gw.url, json=INITIALIZE, headers=headers)
                        assert refused.status_code == 401
                        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
            logs = gw.read_stderr(timeout=0.5)
    assert before == "Echo: old key" and after == "Echo: new key"
    assert host.hits == 2  # twenty unknown kids within the cool-down: not one more fetch
    assert "Traceback" not in logs


async def test_a_jwks_that_breaks_fails_closed_for_unknown_keys_with_one_clear_line(tmp_path: Path) -> None:
    key, rotated = new_key(), new_key()
    with JwksHost().running() as host:
        host.serve({"k1": key})
        with serve(policy_file(tmp_path), "--state", "memory", *jwt_flags(host.url + "?tenant=secret-t")) as gw:
            host.status, host.body = 200, b"<html>maintenance</html>"
            async with httpx.AsyncClient(timeout=30) as http:
                new = {**HEADERS, "authorization": f"Bearer {token('bob', rotated, 'k2')}"}
                unavailable = await http.post(gw.url, json=INITIALIZE, headers=new)
                again = await http.post(gw.url, json=INITIALIZE, headers=new)
                known = {**HEADERS, "authorization": f"Bearer {token('alice', key, 'k1')}"}
                still = await http.post(gw.url, json=INITIALIZE, headers=known)
            logs = gw.read_stderr(timeout=1.0)
    assert unavailable.status_code == 503 and unavailable.headers["retry-after"] == "30"
    assert "keys cannot be fetched" in unavailable.json()["error"]["message"]
    assert again.status_code == 503 and host.hits == 2  # the second did not fetch again
    assert still.status_code == 200 and still.json()["result"]["serverInfo"]  # the keys held still verify
    refresh = [line for line in logs.splitlines() if "refresh failed" in line]
    assert len(refresh) == 1 and f"--jwks {host.url}: refresh failed (JSONDecodeError" in refresh[0]
    assert "Traceback" not in logs and "secret-t" not in logs


@pytest.mark.parametrize("how", ["unreachable", "garbled", "error status", "untrusted certificate"])
def test_a_jwks_that_cannot_be_had_at_start_stops_the_gateway_with_one_line(tmp_path: Path, how: str) -> None:
    tls, _ = loopback_ca(tmp_path)
    host = JwksHost(tls if how == "untrusted certificate" else None)
    host.serve({"k1": new_key()})
    if how == "garbled":
        host.body = b'{"keys": "none"}'
    elif how == "error status":
        host.status = 500
    url = f"http://127.0.0.1:{free_port()}/jwks.json" if how == "unreachable" else host.url
    env = {**os.environ, "REGOGATE_OPA": find_opa_binary()}
    argv = [REGOGATE, "serve", "-c", str(policy_file(tmp_path)), "--listen", "127.0.0.1:0", "--state", "memory"]
    with host.running():
        done = subprocess.run(
            [*argv, *jwt_flags(url), "--", EVERYTHING_SERVER],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
        )
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 1, stderr
    expected = {
        "unreachable": "ConnectError",
        "garbled": 'not a JWKS (expected an object with a "keys" list)',
        "error status": "HTTP 500",
        "untrusted certificate": "CERTIFICATE_VERIFY_FAILED",
    }[how]
    failure = [line for line in stderr.splitlines() if f"--jwks {url}: cannot load the keys" in line]
    assert len(failure) == 1 and expected in failure[0], stderr
    assert "Traceback" not in stderr and "serving MCP" not in stderr
