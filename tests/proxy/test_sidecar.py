"""The embedded OPA: start, readiness, clean stop, start failures, reload without dropped calls."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import anyio
import pytest

from regogate.core import ConfigError, DecisionError
from regogate.proxy.policy._embedded_opa import EmbeddedOpa, find_opa
from tests.conftest import alive
from tests.proxy.opa_fixtures import write_bundle

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.anyio

ALLOW = {"t/t.rego": "package t\n\nallow := true\n"}
DENY = {"t/t.rego": "package t\n\nallow := false\n"}
BROKEN = {"t/t.rego": "package t\n\nallow := if {\n"}
#: Concurrent callers kept busy across a reload.
CALLERS = 4
#: Decisions each caller makes after the reload, to show the new policy is in force.
CALLS_AFTER_RELOAD = 20


async def test_it_starts_ready_and_decides(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", ALLOW)
    async with EmbeddedOpa([bundle]) as opa:
        assert opa.url.startswith("unix:///") and opa.url.endswith("/opa.sock")
        directory = Path(opa.url.removeprefix("unix://")).parent
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert opa.ready_seconds is not None
        logger.info("embedded OPA ready in %.3f s", opa.ready_seconds)
        assert await opa.client.health(bundles=True)
        assert await opa.client.evaluate("t/allow", {}) == (True, None)


async def test_it_stops_leaving_no_process_and_no_directory(tmp_path: Path) -> None:
    async with EmbeddedOpa([write_bundle(tmp_path / "b", ALLOW)]) as opa:
        pid = opa.pid
        directory = Path(opa.url.removeprefix("unix://")).parent
        client = opa.client
    assert not alive(pid)
    assert not directory.exists()
    with pytest.raises(DecisionError) as caught:
        await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_unreachable"


async def test_it_stops_when_the_body_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="body"):
        async with EmbeddedOpa([write_bundle(tmp_path / "b", ALLOW)]) as opa:
            pid = opa.pid
            raise RuntimeError("body")
    assert not alive(pid)


async def test_a_cancelled_body_still_stops_opa(tmp_path: Path) -> None:
    with anyio.CancelScope() as scope:
        async with EmbeddedOpa([write_bundle(tmp_path / "b", ALLOW)]) as opa:
            pid = opa.pid
            scope.cancel()
            await anyio.Event().wait()
    assert not alive(pid)


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.02])
async def test_cancelling_the_start_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delay: float
) -> None:
    private = tmp_path / "private"
    private.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(private))
    with anyio.move_on_after(delay):
        async with EmbeddedOpa([write_bundle(tmp_path / "b", ALLOW)]):
            await anyio.Event().wait()
    assert list(private.iterdir()) == []


async def test_a_bundle_that_fails_to_compile_is_a_config_error_quoting_opa(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / "private"
    private.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(private))
    with pytest.raises(ConfigError) as caught:
        async with EmbeddedOpa([write_bundle(tmp_path / "b", BROKEN)]):
            raise AssertionError("OPA should not have started")
    assert "before it was ready" in str(caught.value)
    assert "rego_parse_error" in str(caught.value)
    assert list(private.iterdir()) == []


async def test_decision_logs_reach_the_opa_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="regogate.opa")
    logged = anyio.Event()
    lines: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Decision Log" in record.getMessage():
                lines.append(record.getMessage())
                logged.set()

    handler = Catch()
    logging.getLogger("regogate.opa").addHandler(handler)
    try:
        async with EmbeddedOpa([write_bundle(tmp_path / "b", ALLOW)], decision_logs=True) as opa:
            _, decision_id = await opa.client.evaluate("t/allow", {})
            with anyio.fail_after(5):
                await logged.wait()
    finally:
        logging.getLogger("regogate.opa").removeHandler(handler)
    assert decision_id is not None
    assert decision_id in lines[0]


async def test_reload_changes_decisions_without_failing_calls_in_flight(tmp_path: Path) -> None:
    before = write_bundle(tmp_path / "v1", ALLOW)
    after = write_bundle(tmp_path / "v2", DENY)
    seen: list[object] = []
    failures: list[BaseException] = []
    reloaded = anyio.Event()
    busy = anyio.Event()

    async with EmbeddedOpa([before]) as opa:
        old_pid, old_url = opa.pid, opa.url

        async def caller() -> None:
            after_reload = 0
            while after_reload < CALLS_AFTER_RELOAD:
                done = reloaded.is_set()
                try:
                    seen.append((await opa.client.evaluate("t/allow", {}))[0])
                except DecisionError as exc:
                    failures.append(exc)
                busy.set()
                after_reload += done

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(CALLERS):
                    tg.start_soon(caller)
                await busy.wait()
                await opa.reload([after])
                reloaded.set()
        assert await opa.client.evaluate("t/allow", {}) == (False, None)
        assert opa.url != old_url
        assert not alive(old_pid)
        assert not Path(old_url.removeprefix("unix://")).parent.exists()
    assert failures == []
    assert seen[0] is True
    assert seen[-1] is False


async def test_a_failed_reload_keeps_the_old_policy(tmp_path: Path) -> None:
    async with EmbeddedOpa([write_bundle(tmp_path / "v1", ALLOW)]) as opa:
        url = opa.url
        with pytest.raises(ConfigError, match="rego_parse_error"):
            await opa.reload([write_bundle(tmp_path / "v2", BROKEN)])
        assert opa.url == url
        assert await opa.client.evaluate("t/allow", {}) == (True, None)


def test_find_opa_prefers_an_explicit_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_opa(None)
    monkeypatch.setenv("REGOGATE_OPA", str(tmp_path / "nothing"))
    assert find_opa(real) == real
    with pytest.raises(ConfigError, match="--opa-bin"):
        find_opa(str(tmp_path / "missing"))


def test_find_opa_reads_the_environment_then_path_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_opa(None)
    monkeypatch.setenv("REGOGATE_OPA", real)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_opa(None) == real
    monkeypatch.delenv("REGOGATE_OPA")
    cache_bin = tmp_path / "cache" / "bin"
    cache_bin.mkdir(parents=True)
    (cache_bin / "opa").symlink_to(real)
    monkeypatch.setenv("REGOGATE_CACHE", str(tmp_path / "cache"))
    assert find_opa(None) == str(cache_bin / "opa")


def test_find_opa_says_how_to_get_opa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGOGATE_OPA", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("REGOGATE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="no OPA binary found") as caught:
        find_opa(None)
    message = str(caught.value)
    assert "go install github.com/open-policy-agent/opa@v" in message
    assert "regogate doctor" in message and "make setup" not in message
