"""`regogate serve --auth jwt`: every caller known to OPA by a verified token; keys are made here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.harness import text
from tests.e2e.serve_harness import HEADERS, INITIALIZE, mcp_session, serve
from tests.http_servers import python_http_server

pytestmark = pytest.mark.anyio

TIMEOUT = 90
ISSUER = "https://idp.example.test/"
AUDIENCE = "https://gateway.example.test/mcp"

POLICY = """\
version: "1"
tools:
  echo:
    rules:
      - name: payments-only
        conditions:
          - path: principal.team
            op: eq
            value: payments
        on_deny: "Only the payments team may echo"
  get-sum:
    rules:
      - name: two-each
        rate_limit: 2/minute
        per: principal
        on_deny: "Two sums each per minute"
"""


class Issuer:
    """An identity provider made for one test: its keys, its JWKS file, the tokens it signs."""

    def __init__(self, tmp_path: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = tmp_path / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}), "utf-8")

    def token(self, sub: str, *, key: rsa.RSAPrivateKey | None = None, kid: str = "k1", **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300, **claims}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid})

    def flags(self) -> tuple[str, ...]:
        return ("--auth", "jwt", "--jwks", str(self.jwks), "--issuer", ISSUER, "--audience", AUDIENCE)


def unsigned(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None = None) -> str:
    """A token assembled by hand: alg none (no signature), or HS256 keyed with `secret`."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(payload)}"
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


async def test_each_caller_is_decided_and_counted_as_its_token_says(tmp_path: Path) -> None:
    idp = Issuer(tmp_path)
    audit = tmp_path / "audit.jsonl"
    tokens = {
        "alice": idp.token("alice", team="payments"),
        "bob": idp.token("bob", team="ops"),
        "carol": idp.token("carol", team="payments"),
    }
    seen: dict[str, list[str]] = {}
    flags = ("--state", "memory", "--audit-log", str(audit), "--log-level", "debug", *idp.flags())
    with serve(policy_file(tmp_path), *flags) as gw, anyio.fail_after(TIMEOUT):

        async def caller(name: str) -> None:
            async with mcp_session(gw.url, {"authorization": f"Bearer {tokens[name]}"}) as session:
                seen[name] = [text(await session.call_tool("echo", {"message": "hi"}))]
                for n in range(3):
                    seen[name].append(text(await session.call_tool("get-sum", {"a": n, "b": 1})))

        async with anyio.create_task_group() as tg:
            for name in tokens:
                tg.start_soon(caller, name)
        logs = gw.read_stderr(timeout=0.5)
    sums = ["The sum of 0 and 1 is 1.", "The sum of 1 and 1 is 2.", "[POLICY DENIED] Two sums each per minute"]
    assert seen["alice"] == ["Echo: hi", *sums]
    assert seen["carol"] == ["Echo: hi", *sums]  # her own budget, not what alice spent
    assert seen["bob"] == ["[POLICY DENIED] Only the payments team may echo", *sums]
    decided = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    who = sorted(e["principal"] for e in decided if e["event"] == "decision")
    assert who == ["alice"] * 4 + ["bob"] * 4 + ["carol"] * 4
    for token in tokens.values():
        assert token not in logs and token not in audit.read_text(encoding="utf-8")
        assert token.split(".")[2] not in logs


def test_missing_and_bad_tokens_get_401_with_where_to_get_one(tmp_path: Path) -> None:
    idp = Issuer(tmp_path)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300}
    public_pem = idp.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bad = {
        "expired": idp.token("alice", exp=now - 3600, iat=now - 7200),
        "forged": idp.token("alice", key=idp.other),
        "wrong audience": idp.token("alice", aud="https://elsewhere.example.test/mcp"),
        "wrong issuer": idp.token("alice", iss="https://evil.example.test/"),
        "unknown key": idp.token("alice", key=idp.other, kid="k2"),
        "alg none": unsigned({"alg": "none", "kid": "k1"}, claims),
        "HS256 keyed with the public key": unsigned({"alg": "HS256", "kid": "k1"}, claims, public_pem),
        "no subject": jwt.encode({k: v for k, v in claims.items() if k != "sub"}, idp.key, "RS256", {"kid": "k1"}),
        "not a JWT": "hello",
    }
    with serve(policy_file(tmp_path), "--state", "memory", *idp.flags()) as gw, httpx.Client(timeout=30) as http:
        missing = http.post(gw.url, json=INITIALIZE, headers=HEADERS)
        assert missing.status_code == 401
        challenge = missing.headers["www-authenticate"]
        metadata_url = f"{gw.base}/.well-known/oauth-protected-resource"
        assert challenge == f'Bearer resource_metadata="{metadata_url}"'
        spoofed = http.post(gw.url, json=INITIALIZE, headers={**HEADERS, "x-forwarded-proto": "https"})
        assert spoofed.headers["www-authenticate"] == challenge  # no proxy in front is believed unless named
        metadata = http.get(metadata_url).json()
        assert metadata["resource"] == AUDIENCE and metadata["authorization_servers"] == [ISSUER]
        for what, token in bad.items():
            refused = http.post(gw.url, json=INITIALIZE, headers={**HEADERS, "authorization": f"Bearer {token}"})
            assert refused.status_code == 401, what
            assert 'error="invalid_token"' in refused.headers["www-authenticate"], what
            assert token not in refused.text, what

        alice = {**HEADERS, "authorization": f"Bearer {idp.token('alice', team='payments')}"}
        bob = {**HEADERS, "authorization": f"Bearer {idp.token('bob', team='ops')}"}
        started = http.post(gw.url, json=INITIALIZE, headers=alice)
        assert started.status_code == 200
        session = started.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        assert http.post(gw.url, json=ping, headers={**alice, "mcp-session-id": session}).status_code == 200
        hijack = http.post(gw.url, json=ping, headers={**bob, "mcp-session-id": session})
        assert hijack.status_code == 403 and "another principal" in hijack.json()["error"]["message"]
        anonymous = http.post(gw.url, json=ping, headers={**HEADERS, "mcp-session-id": session})
        assert anonymous.status_code == 401


def test_a_trusted_proxy_in_front_names_the_scheme_clients_are_sent_to(tmp_path: Path) -> None:
    idp = Issuer(tmp_path)
    flags = ("--state", "memory", "--trusted-proxy", "127.0.0.0/8", *idp.flags())
    with serve(policy_file(tmp_path), *flags) as gw, httpx.Client(timeout=30) as http:
        behind_tls = http.post(gw.url, json=INITIALIZE, headers={**HEADERS, "x-forwarded-proto": "https"})
    assert behind_tls.status_code == 401
    metadata_url = gw.base.replace("http://", "https://") + "/.well-known/oauth-protected-resource"
    assert behind_tls.headers["www-authenticate"] == f'Bearer resource_metadata="{metadata_url}"'


async def test_a_remote_upstream_gets_its_own_credential_never_the_callers_token(tmp_path: Path) -> None:
    idp = Issuer(tmp_path)
    token = idp.token("alice", team="payments")
    policy = tmp_path / "remote.yaml"
    policy.write_text(
        'version: "1"\nhide: [count]\ntools:\n  echo:\n    rules:\n      - name: no-shouting\n'
        '        conditions:\n          - path: args.text\n            op: regex\n            value: "^[a-z ]*$"\n'
        '        on_deny: "No shouting"\n',
        encoding="utf-8",
    )
    with python_http_server("--token", "upstream-secret") as remote:
        flags = (
            "--state",
            "memory",
            *idp.flags(),
            "--header-env",
            "Authorization=UPSTREAM_AUTH",
            "--upstream",
            remote.url,
        )
        with serve(policy, *flags, upstream=(), env={"UPSTREAM_AUTH": "Bearer upstream-secret"}) as gw:
            with anyio.fail_after(TIMEOUT):
                async with (
                    mcp_session(gw.url, {"authorization": f"Bearer {token}"}) as first,
                    mcp_session(gw.url, {"authorization": f"Bearer {token}"}) as second,
                ):
                    names = {t.name for t in (await first.list_tools()).tools}
                    allowed = await first.call_tool("echo", {"text": "hello"})
                    denied = await second.call_tool("echo", {"text": "HELLO"})
            logs = gw.read_stderr(timeout=0.5)
    assert "count" not in names and "echo" in names
    assert text(allowed) == "hello"
    assert denied.is_error and text(denied) == "[POLICY DENIED] No shouting"
    assert token not in logs and "upstream-secret" not in logs


async def test_a_token_remembered_as_verified_still_stops_working_at_its_expiry(tmp_path: Path) -> None:
    """After its first request a token's signature is not checked again (the gateway remembers it passed);
    its expiry still is, on every request."""
    idp = Issuer(tmp_path)
    flags = ("--state", "memory", *idp.flags(), "--clock-skew", "0")
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    with serve(policy_file(tmp_path), *flags) as gw, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=30) as http:
            expiry = int(time.time()) + 8
            short = {**HEADERS, "authorization": f"Bearer {idp.token('alice', team='payments', exp=expiry)}"}
            started = await http.post(gw.url, json=INITIALIZE, headers=short)
            session = {**short, "mcp-session-id": started.headers["mcp-session-id"]}
            statuses = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                answer = await http.post(gw.url, json=ping, headers=session)
                statuses.append(answer.status_code)
                if answer.status_code != 200:
                    break
                await anyio.sleep(0.25)
            refused_at = time.time()
    assert started.status_code == 200 and statuses[0] == 200
    assert statuses[-1] == 401 and 'error_description="the token has expired"' in answer.headers["www-authenticate"]
    assert refused_at >= expiry
