"""The OPA client against a real OPA (unix socket and TCP), and faults only a fake server can make."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from regogate.core import ConfigError, DecisionError
from regogate.proxy.policy import OpaClient
from tests.proxy.fake_http import Reply, Seen, fake_http, json_reply
from tests.proxy.opa_fixtures import ALLOW_BUNDLE, FaultTransport, running_opa, write_bundle

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.anyio

TRANSPORTS = ["unix", "tcp"]
#: Enough round trips for a stable median, few enough to keep the suite fast.
ROUND_TRIPS = 200


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "bundle", ALLOW_BUNDLE)


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


def _answer(reply: Reply) -> Callable[[Seen], Awaitable[Reply]]:
    async def handler(request: Seen) -> Reply:
        return reply

    return handler


async def test_garbage_body_is_malformed() -> None:
    async with fake_http(_answer(Reply(body=b"<html>"))) as (url, _), OpaClient(url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "decision_malformed"


async def test_a_body_that_is_not_an_object_is_malformed() -> None:
    async with fake_http(_answer(json_reply('[{"result": true}]'))) as (url, _), OpaClient(url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "decision_malformed"


async def test_a_500_is_opa_error_with_its_code_and_message() -> None:
    body = '{"code": "internal_error", "message": "boom"}'
    async with fake_http(_answer(json_reply(body, 500))) as (url, _), OpaClient(url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_error"
    assert caught.value.detail == "OPA answered HTTP 500 internal_error: boom"


async def test_a_non_json_error_page_is_opa_error() -> None:
    async with fake_http(_answer(Reply(502, b"bad gateway"))) as (url, _), OpaClient(url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_error"
    assert "502" in caught.value.detail
    assert "bad gateway" in caught.value.detail


async def test_a_stalled_opa_is_opa_timeout() -> None:
    async def stall(request: Seen) -> Reply:
        await anyio.Event().wait()
        raise AssertionError("unreachable")

    async with fake_http(stall) as (url, _), OpaClient(url, timeout=0.05) as client:
        with anyio.fail_after(5), pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_timeout"


async def test_an_answer_that_is_not_http_is_unreachable() -> None:
    async with fake_http(_answer(Reply(raw=b"SSH-2.0-OpenSSH\r\n\r\n"))) as (url, _), OpaClient(url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_unreachable"


async def test_a_connection_cut_mid_answer_is_unreachable() -> None:
    cut = b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"result"'
    async with fake_http(_answer(Reply(raw=cut))) as (url, _), OpaClient(url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_unreachable"


async def test_a_connection_closed_without_an_answer_is_unreachable() -> None:
    async with fake_http(_answer(Reply(raw=b""))) as (url, _), OpaClient(url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_unreachable"


async def test_an_answer_that_ends_with_the_connection_is_read_whole_and_the_connection_not_reused() -> None:
    unframed = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"result": true}'
    async with fake_http(_answer(Reply(raw=unframed))) as (url, seen), OpaClient(url) as client:
        with anyio.fail_after(5):
            for _ in range(2):
                assert await client.evaluate("t/allow", {}) == (True, None)
    assert [request.connection for request in seen] == [1, 2]


async def test_an_unframed_answer_cut_mid_body_is_malformed() -> None:
    cut = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"result": tr'
    async with fake_http(_answer(Reply(raw=cut))) as (url, _), OpaClient(url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "decision_malformed"


async def test_an_informational_answer_before_the_decision_is_skipped() -> None:
    body = b'{"result": {"allow": false}}'
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    async with fake_http(_answer(Reply(raw=raw))) as (url, _), OpaClient(url) as client:
        assert await client.evaluate("t/allow", {}) == ({"allow": False}, None)


async def test_the_framing_of_an_informational_answer_does_not_frame_the_answer_after_it() -> None:
    raw = b'HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{"result": true}'
    async with fake_http(_answer(Reply(raw=raw))) as (url, _), OpaClient(url) as client:
        with anyio.fail_after(5):
            assert await client.evaluate("t/allow", {}) == (True, None)


async def test_an_answer_past_the_size_bound_is_opa_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("regogate.proxy.policy._http.MAX_ANSWER_BYTES", 1000)
    reply = json_reply('{"result": "' + "x" * 2000 + '"}')
    reply.chunked = True
    async with fake_http(_answer(reply)) as (url, _), OpaClient(url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "opa_error" and "larger than 1000 bytes" in str(caught.value)


async def test_a_chunked_answer_is_read_whole() -> None:
    reply = json_reply('{"result": {"allow": true, "reasons": []}}')
    reply.chunked = True
    async with fake_http(_answer(reply)) as (url, _), OpaClient(url) as client:
        assert await client.evaluate("t/allow", {}) == ({"allow": True, "reasons": []}, None)


async def test_a_keep_alive_connection_the_server_dropped_is_replaced() -> None:
    reply = json_reply('{"result": true}')
    reply.close = True  # as if OPA closed the idle connection right after answering
    async with fake_http(_answer(reply)) as (url, seen), OpaClient(url) as client:
        for _ in range(3):
            assert await client.evaluate("t/allow", {}) == (True, None)
    assert [request.connection for request in seen] == [1, 2, 3]


async def test_one_connection_serves_sequential_decisions() -> None:
    async with fake_http(_answer(json_reply('{"result": true}'))) as (url, seen), OpaClient(url) as client:
        for _ in range(5):
            assert await client.evaluate("t/allow", {}) == (True, None)
    assert [request.connection for request in seen] == [1] * 5


async def test_the_request_is_the_documented_post() -> None:
    reply = json_reply('{"result": true, "decision_id": "d-9"}')
    async with fake_http(_answer(reply)) as (url, seen), OpaClient(url) as client:
        assert await client.evaluate("regogate/gate/decision", {"k": "é"}) == (True, "d-9")
    (request,) = seen
    assert request.method == "POST"
    assert request.target == "/v1/data/regogate/gate/decision?strict-builtin-errors=true"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"input": {"k": "é"}}


@pytest.mark.parametrize("value", [float("nan"), float("-inf"), "\ud800", [None, float("inf")]])
async def test_an_input_json_cannot_carry_is_refused_before_sending(value: object) -> None:
    async with fake_http(_answer(json_reply('{"result": true}'))) as (url, seen), OpaClient(url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {"x": value})
    assert caught.value.code == "opa_error"
    assert seen == []


async def test_an_input_is_sent_exactly_big_integers_floats_and_nulls_included() -> None:
    document = {"big": 2**70, "neg": -(2**64), "f": 1e-7, "z": -0.0, "n": None, "s": "\u2028é\x00"}
    async with fake_http(_answer(json_reply('{"result": true}'))) as (url, seen), OpaClient(url) as client:
        await client.evaluate("t/allow", document)
        await client.evaluate("t/allow", {"plain": [1, "two", True]})
    first, second = seen
    assert json.loads(first.body) == {"input": document}
    assert json.loads(second.body) == {"input": {"plain": [1, "two", True]}}


async def test_a_closed_client_is_unreachable() -> None:
    async with fake_http(_answer(json_reply('{"result": true}'))) as (url, _):
        client = OpaClient(url)
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

    async def slow_old(request: Seen) -> Reply:
        arrived.set()
        await release.wait()
        return json_reply('{"result": "old"}')

    results: list[object] = []
    async with fake_http(slow_old) as (old_url, _), fake_http(_answer(json_reply('{"result": "new"}'))) as (new_url, _):
        client = OpaClient(old_url)

        async def ask() -> None:
            results.append((await client.evaluate("t/x", {}))[0])

        async with client:
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(ask)
                    await arrived.wait()

                    async def switch() -> None:
                        await client.retarget(new_url)

                    tg.start_soon(switch)
                    await anyio.wait_all_tasks_blocked()
                    assert (await client.evaluate("t/x", {}))[0] == "new"
                    release.set()
            assert client.url == new_url
    assert results == ["old"]


async def test_a_request_still_running_when_the_client_closes_is_cut_off() -> None:
    arrived = anyio.Event()

    async def stall(request: Seen) -> Reply:
        arrived.set()
        await anyio.Event().wait()
        raise AssertionError("unreachable")

    caught: list[DecisionError] = []
    async with fake_http(stall) as (url, seen):
        client = OpaClient(url)

        async def ask() -> None:
            try:
                await client.evaluate("t/x", {})
            except DecisionError as exc:
                caught.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await arrived.wait()
                await client.aclose()
    assert [exc.code for exc in caught] == ["opa_unreachable"]
    assert len(seen) == 1


UNSOLICITED = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"result": -1}\n'


async def test_an_unsolicited_answer_on_a_kept_connection_is_never_taken_for_the_next_one() -> None:
    async def handler(request: Seen) -> Reply:
        reply = json_reply(json.dumps({"result": json.loads(request.body)["input"]["n"]}))
        reply.trailer = UNSOLICITED  # a second answer, for no request, after every real one
        return reply

    async with fake_http(handler) as (url, seen), OpaClient(url) as client:
        answers = [(await client.evaluate("t/allow", {"n": n}))[0] for n in range(20)]
    assert answers == list(range(20))
    assert len({request.connection for request in seen}) == 20  # each dirty connection was dropped


@pytest.mark.parametrize(
    "body",
    [
        '{"result": NaN}',
        '{"result": {"allow": true, "rate_limits": [{"cost": Infinity}]}}',
        '{"result": -Infinity}',
        '{"result": false, "result": true}',
        '{"result": {"allow": false, "allow": true}}',
    ],
)
async def test_answers_that_are_not_strict_json_are_malformed(body: str) -> None:
    async with fake_http(_answer(json_reply(body))) as (url, _), OpaClient(url) as client:
        with pytest.raises(DecisionError) as caught:
            await client.evaluate("t/allow", {})
    assert caught.value.code == "decision_malformed"


@pytest.mark.parametrize(
    ("transport", "code"),
    [
        (FaultTransport(502, b"bad gateway"), "opa_error"),
        (FaultTransport(200, b"<html>"), "decision_malformed"),
        (FaultTransport(200, b'{"result": "\xff"}'), "decision_malformed"),  # not UTF-8
        (FaultTransport(200, b'\xef\xbb\xbf{"result": true}'), "decision_malformed"),  # a byte order mark
        (FaultTransport(200, b"{}"), "decision_undefined"),
        (FaultTransport(error=DecisionError("opa_unreachable", "refused")), "opa_unreachable"),
        (FaultTransport(stall=True), "opa_timeout"),
    ],
)
async def test_an_injected_transport_fault_maps_to_its_code(transport: FaultTransport, code: str) -> None:
    async with OpaClient("http://opa.invalid", timeout=0.05, transport=transport) as client:
        with anyio.fail_after(5), pytest.raises(DecisionError) as caught:
            await client.evaluate("regogate/gate/decision", {"k": 1})
    assert caught.value.code == code
    assert transport.requests == [
        ("POST", "/v1/data/regogate/gate/decision?strict-builtin-errors=true", b'{"input":{"k":1}}')
    ]
    assert transport.closed


async def test_retarget_to_an_injected_transport_closes_the_old_one() -> None:
    old, new = FaultTransport(200, b'{"result": "old"}'), FaultTransport(200, b'{"result": "new"}')
    async with OpaClient("http://old.invalid", transport=old) as client:
        assert (await client.evaluate("t/x", {}))[0] == "old"
        await client.retarget("http://new.invalid", transport=new)
        assert old.closed and not new.closed
        assert (await client.evaluate("t/x", {}))[0] == "new"
        assert client.url == "http://new.invalid"
    assert new.closed
