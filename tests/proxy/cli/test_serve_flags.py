"""`regogate serve`'s command line: what it refuses before anything starts."""

from __future__ import annotations

import importlib.util

import pytest

from regogate.proxy.cli import _serve
from regogate.proxy.cli._main import main


def test_serve_without_its_extra_says_exactly_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "uvicorn" else real(name))
    assert main(["serve", "-c", "policy.yaml", "--", "server"]) == 1
    assert capsys.readouterr().err == f"{_serve.EXTRA_HINT}\n"
    assert "pip install 'regogate[serve]'" in _serve.EXTRA_HINT


JWT = ["--auth", "jwt", "--jwks", "k.json", "--issuer", "https://idp/", "--audience", "https://gw/mcp"]


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--listen", "0.0.0.0:8765"], "off loopback every caller must be identified: add --auth jwt"),
        (["--auth", "jwt", "--issuer", "https://idp/"], "--auth jwt needs --jwks, --audience"),
        (["--jwks", "keys.json"], "--jwks go with --auth jwt"),
        ([*JWT, "--algorithms", "RS256,HS256"], "--algorithms: HS256 refused"),
        ([*JWT, "--algorithms", "none"], "--algorithms: none refused; only public-key signatures"),
        (["--listen", "8765"], "expected HOST:PORT"),
        (["--max-sessions", "0"], "--max-sessions must be at least 1"),
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
        (["--trusted-proxy", "proxy.internal"], "--trusted-proxy 'proxy.internal': expected an IP address or network"),
        (["--upstream", "http://127.0.0.1:1/mcp"], "give either --upstream URL or a command after --, not both"),
    ],
)
def test_serve_refuses_unsafe_or_wrong_flags_with_one_line(
    flags: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["--", "server"]
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "-c", "policy.yaml", *flags, *command])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert complaint in err and err.count("\n") == 1 and err.startswith("regogate serve: ")
