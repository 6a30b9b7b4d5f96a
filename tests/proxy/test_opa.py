"""The OPA client against a real OPA (unix socket and TCP), and faults only a fake server can make."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest

from regogate.proxy._errors import ConfigError, DecisionError
from regogate.proxy._opa import OpaClient
from tests.proxy.opa_fixtures import ALLOW_BUNDLE, running_opa, write_bundle

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.anyio

TRANSPORTS = ["unix", "tcp"]
#: Enough round trips for a stable median, few enough to keep the suite fast.
ROUND_TRIPS = 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "bundle", ALLOW_BUNDLE)


def _mock(handler: Callable[[httpx.Request], httpx.Response]) -> OpaClient:
    return OpaClient("http://opa.invalid:8181", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_real_opa_allows_and_denies(bundle: Path, transport: str) -> None:
    async with running_opa(bundle, transport=transport) as opa, OpaClient(opa.url) as client:
        assert await client.evaluate("t/allow", {"x": 1}) == (True, None)
        result, _ = await client.evaluate("/t/decision/", {"x": 2})
        assert result == {"allow": False, "reasons": [{"rule": "x", "message": "x must be 1"}]}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_undefined_path_is_decision_undefined(bundle: Path, transport: str) -> None:
    async with running_opa(bundle, transport=transport) as opa, OpaClient(opa.url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/missing", {"x": 1})
    assert caught.value.code == "decision_undefined"
    assert "data.t.missing" in caught.value.detail


async def test_a_builtin_error_is_opa_error_with_opas_message(bundle: Path) -> None:
    async with running_opa(bundle, transport="unix") as opa, OpaClient(opa.url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/bad", {"s": "not a number"})
    assert caught.value.code == "opa_error"
    assert "HTTP 500 internal_error" in caught.value.detail
    assert "eval_builtin_error: to_number" in caught.value.detail


async def test_a_killed_opa_is_unreachable(bundle: Path) -> None:
    async with running_opa(bundle, transport="unix") as opa, OpaClient(opa.url) as client:
        assert (await client.evaluate("t/allow", {"x": 1}))[0] is True
        opa.kill()
        await opa.process.wait()
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {"x": 1})
    assert caught.value.code == "opa_unreachable"


async def test_nobody_listening_is_unreachable(tmp_path: Path) -> None:
    async with OpaClient(f"unix://{tmp_path}/none.sock") as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
        assert caught.value.code == "opa_unreachable"
        assert not await client.health()


async def test_health_version_and_metrics_come_from_a_real_opa(bundle: Path) -> None:
    async with running_opa(bundle, transport="tcp") as opa, OpaClient(opa.url) as client:
        assert await client.health()
        assert await client.health(bundles=True)
        major, minor, _patch = (await client.version()).split(".")
        assert (int(major), int(minor)) >= (1, 0)
        result, decision_id, eval_ns = await client.evaluate_with_metrics("t/allow", {"x": 1})
    assert result is True
    assert decision_id is None
    assert isinstance(eval_ns, int)
    assert eval_ns > 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_repeated_decisions_over_one_connection_agree(bundle: Path, transport: str) -> None:
    async with running_opa(bundle, transport=transport) as opa, OpaClient(opa.url) as client:
        samples: list[float] = []
        for _ in range(ROUND_TRIPS):
            started = anyio.current_time()
            assert await client.evaluate("t/allow", {"x": 1}) == (True, None)
            samples.append(anyio.current_time() - started)
    samples.sort()
    logger.info("OPA round trip over %s: p50 %.0f us", transport, samples[len(samples) // 2] * 1e6)


async def test_garbage_body_is_malformed() -> None:
    async with _mock(lambda request: httpx.Response(200, content=b"<html>")) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "decision_malformed"


async def test_a_body_that_is_not_an_object_is_malformed() -> None:
    async with _mock(lambda request: httpx.Response(200, json=[{"result": True}])) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "decision_malformed"


async def test_a_500_is_opa_error_with_its_code_and_message() -> None:
    body = {"code": "internal_error", "message": "boom"}
    async with _mock(lambda request: httpx.Response(500, json=body)) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_error"
    assert caught.value.detail == "OPA answered HTTP 500 internal_error: boom"


async def test_a_non_json_error_page_is_opa_error() -> None:
    async with _mock(lambda request: httpx.Response(502, text="bad gateway")) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_error"
    assert "502" in caught.value.detail


async def test_a_stalled_opa_is_opa_timeout() -> None:
    async def stall(request: httpx.Request) -> httpx.Response:
        await anyio.Event().wait()
        raise AssertionError("unreachable")

    client = OpaClient("http://opa.invalid", timeout=0.05, transport=httpx.MockTransport(stall))
    async with client:
        with anyio.fail_after(5), pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_timeout"


async def test_the_request_is_the_documented_post() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": True, "decision_id": "d-9"})

    async with _mock(answer) as client:
        assert await client.evaluate("regogate/gate/decision", {"k": "é"}) == (True, "d-9")
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == "/v1/data/regogate/gate/decision"
    assert request.url.query == b"strict-builtin-errors=true"
    assert json.loads(request.content) == {"input": {"k": "é"}}


async def test_an_input_json_cannot_carry_is_refused_before_sending() -> None:
    async with _mock(lambda request: httpx.Response(200, json={"result": True})) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {"x": float("nan")})
    assert caught.value.code == "opa_error"


async def test_a_closed_client_is_unreachable() -> None:
    client = _mock(lambda request: httpx.Response(200, json={"result": True}))
    await client.aclose()
    with pytest.raises(DecisionError) as caught:
        await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_unreachable"
    assert not await client.health()
    with pytest.raises(DecisionError, match="opa_unreachable"):
        await client.version()


@pytest.mark.parametrize("url", ["localhost:8181", "unix://", "ftp://opa"])
def test_a_bad_address_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        OpaClient(url)


async def test_retarget_lets_requests_in_flight_finish_on_the_old_target() -> None:
    release = anyio.Event()
    arrived = anyio.Event()

    async def slow_old(request: httpx.Request) -> httpx.Response:
        arrived.set()
        await release.wait()
        return httpx.Response(200, json={"result": "old"})

    client = OpaClient("http://old.invalid", transport=httpx.MockTransport(slow_old))
    results: list[object] = []

    async def ask() -> None:
        results.append((await client.evaluate("t/x", {}))[0])

    async with client:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await arrived.wait()
                new = httpx.MockTransport(lambda request: httpx.Response(200, json={"result": "new"}))

                async def switch() -> None:
                    await client.retarget("http://new.invalid", transport=new)

                tg.start_soon(switch)
                await anyio.wait_all_tasks_blocked()
                assert (await client.evaluate("t/x", {}))[0] == "new"
                release.set()
        assert client.url == "http://new.invalid"
    assert results == ["old"]
