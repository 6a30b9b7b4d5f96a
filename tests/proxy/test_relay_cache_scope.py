"""What the relay does to a tools/list answer's ``cacheScope`` (2026-07-28, SEP-2549)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import anyio
import pytest

from tests.proxy.conftest import Gate, Pipes

pytestmark = pytest.mark.anyio

RelayOnPipes = Callable[..., AbstractAsyncContextManager[Pipes]]
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def modern_list(request_id: str) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/list", "params": {"_meta": MODERN_META}}


@pytest.mark.parametrize("scope", ["public", "shared", 7, None, "absent"])
async def test_a_modern_list_is_private_whatever_scope_the_server_claimed(
    relay_on_pipes: RelayOnPipes, scope: object
) -> None:
    result: dict[str, object] = {"tools": [{"name": "echo"}, {"name": "get-env"}], "ttlMs": 5000}
    result["resultType"] = "complete"
    if scope != "absent":
        result["cacheScope"] = scope
    async with relay_on_pipes(Gate(hide={"get-env"})) as pipes:
        await pipes.from_client(modern_list("l1"))
        await pipes.to_upstream()
        await pipes.from_upstream({"jsonrpc": "2.0", "id": "l1", "result": result})
        listed = await pipes.to_client()
    assert listed["result"] == {**result, "tools": [{"name": "echo"}], "cacheScope": "private"}


async def test_a_modern_list_hiding_nothing_is_private_too_and_a_private_one_passes_as_it_came(
    relay_on_pipes: RelayOnPipes,
) -> None:
    public = b'{"jsonrpc":"2.0","id":"a","result":{"tools":[],"cacheScope":"public","ttlMs":1,"resultType":"complete"}}'
    private = (
        b'{"jsonrpc":"2.0","id":"b","result":{"tools":[],"cacheScope":"private","ttlMs":0,"resultType":"complete"}}'
    )
    async with relay_on_pipes(Gate()) as pipes:
        for request_id, answer in (("a", public), ("b", private)):
            await pipes.from_client(modern_list(request_id))
            await pipes.to_upstream()
            await pipes.from_upstream(answer)
        with anyio.fail_after(5):
            first, second = await pipes.client_receive.receive(), await pipes.client_receive.receive()
    assert first == public.replace(b'"public"', b'"private"')
    assert second == private


async def test_legacy_lists_and_modern_errors_keep_their_shape(relay_on_pipes: RelayOnPipes) -> None:
    legacy = {"tools": [{"name": "echo"}], "cacheScope": "public"}  # not a field of 2025-11-25: left alone
    error = {"code": -32603, "message": "no"}
    async with relay_on_pipes(Gate()) as pipes:
        await pipes.handshake()
        await pipes.from_client({"jsonrpc": "2.0", "id": "old", "method": "tools/list"})
        await pipes.to_upstream()
        await pipes.from_upstream({"jsonrpc": "2.0", "id": "old", "result": legacy})
        old = await pipes.to_client()
        await pipes.from_client(modern_list("err"))
        await pipes.to_upstream()
        await pipes.from_upstream({"jsonrpc": "2.0", "id": "err", "error": error})
        failed = await pipes.to_client()
    assert old["result"] == legacy
    assert failed["error"] == error
