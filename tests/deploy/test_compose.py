"""docker-compose.yml, its organisation override and the host example, checked by a real compose parser.

``docker-compose config`` parses, validates against the compose schema and interpolates without an
engine. The OPA arguments it resolves are the ones test_team and test_org run; test_compose_up
brings the file up for real.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
import yaml

from regogate.proxy.cli._run_config import parse_args
from regogate.proxy.cli._serve_config import parse_serve_args
from tests.conftest import ROOT
from tests.deploy.conftest import find_docker_compose
from tests.opa_server import OPA_IMAGE

ORG = ["docker-compose.yml", "deploy/compose.org.yml"]


def compose_config(files: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*find_docker_compose(), *[a for f in files for a in ("-f", f)], "config"]
    environment = {k: v for k, v in os.environ.items() if k != "REGOGATE_LOG_COLLECTOR"}
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env={**environment, **(env or {})}
    )


def services(files: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = compose_config(files, env)
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = yaml.safe_load(done.stdout)["services"]
    return loaded


def test_compose_file_is_valid_and_pins_every_image() -> None:
    team = services(["docker-compose.yml"])
    assert set(team) == {"bundles", "opa", "redis", "gateway"}
    assert team["opa"]["image"] == OPA_IMAGE
    for name, service in team.items():
        if name == "gateway":  # built here, on the host's network (test below)
            continue
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image} is not pinned"
        # Every port is published on the host's loopback only: regogate runs on that host.
        assert all(str(p).startswith("127.0.0.1:") for p in service["ports"]), name
    opa = team["opa"]
    assert "--config-file=/etc/regogate/opa/team.yaml" in opa["command"]
    assert opa["environment"]["REGOGATE_BUNDLE_SERVER"] == "http://bundles/bundles"
    assert any(v.endswith(":/etc/regogate/opa:ro") for v in opa["volumes"])
    assert any("deploy/nginx/bundles.conf:/etc/nginx/conf.d/default.conf" in v for v in team["bundles"]["volumes"])


def test_org_override_signs_and_ships_decision_logs_and_needs_a_collector() -> None:
    org = services(ORG, {"REGOGATE_LOG_COLLECTOR": "https://logs.example.internal"})
    command = org["opa"]["command"]
    assert "--config-file=/etc/regogate/opa/org.yaml" in command
    assert "--set-file=keys.regogate.key=/etc/regogate/keys/bundle-signing.pub.pem" in command
    assert org["opa"]["environment"]["REGOGATE_LOG_COLLECTOR"] == "https://logs.example.internal"
    missing = compose_config(ORG)
    assert missing.returncode != 0 and "REGOGATE_LOG_COLLECTOR" in missing.stderr


@pytest.mark.parametrize("config", ["team.yaml", "org.yaml"])
def test_opa_configs_poll_every_bundle_the_docs_publish(config: str) -> None:
    document = yaml.safe_load((ROOT / "deploy" / "opa" / config).read_text(encoding="utf-8"))
    assert set(document["bundles"]) == {"gate", "python", "mask"}
    for bundle in document["bundles"].values():
        assert bundle["service"] == "bundles" and bundle["resource"].endswith(".tar.gz")
        assert 0 < bundle["polling"]["min_delay_seconds"] <= bundle["polling"]["max_delay_seconds"]
        assert ("signing" in bundle) == (config == "org.yaml")


def test_host_example_runs_regogate_against_the_composed_services() -> None:
    example = json.loads((ROOT / "deploy" / "mcp.json").read_text(encoding="utf-8"))
    server = example["mcpServers"]["python"]
    assert server["command"] == "regogate"
    config = parse_args(server["args"])
    team = services(["docker-compose.yml"])
    assert config.opa_url == "http://127.0.0.1:8181" and "127.0.0.1:8181:8181" in str(team["opa"]["ports"])
    assert config.state == "redis://127.0.0.1:6379/0" and "127.0.0.1:6379:6379" in str(team["redis"]["ports"])
    assert config.upstream == ("python-mcp-server",)


def test_the_gateway_profile_serves_on_loopback_through_the_shared_opa_and_redis() -> None:
    team = services(["docker-compose.yml"])
    gateway = team["gateway"]
    assert gateway["profiles"] == ["gateway"] and gateway["network_mode"] == "host"
    assert gateway["build"]["dockerfile"] == "deploy/gateway/Dockerfile"
    config = parse_serve_args(gateway["command"])
    assert (config.host, config.port, config.jwt) == ("127.0.0.1", 8765, None)
    assert config.run.opa_url == "http://127.0.0.1:8181" and "127.0.0.1:8181:8181" in str(team["opa"]["ports"])
    assert config.run.state == "redis://127.0.0.1:6379/0" and "127.0.0.1:6379:6379" in str(team["redis"]["ports"])
    assert config.run.upstream == ("mcp-server-time",)
    assert (ROOT / "policies" / "python.yaml").is_file()
    dockerfile = (ROOT / "deploy" / "gateway" / "Dockerfile").read_text(encoding="utf-8")
    assert "[serve]" in dockerfile and 'ENTRYPOINT ["regogate", "serve"]' in dockerfile
