"""Approvals in Redis, for a team: a person approves from any machine that reaches the same Redis.

Each approval is a JSON string under ``<prefix>regogate:approval:<id>``; the live approval of one call
(server, tool, arguments digest) is named by ``<prefix>regogate:approval-call:<server>:<tool>:<digest>``.
Requests, answers and ``consume`` are Lua scripts, so a single use holds across processes.
"""

from __future__ import annotations

import json
import math
from contextlib import AbstractAsyncContextManager
from typing import Final

import anyio
from redis.asyncio import Redis

from regogate.proxy.approval._record import Approval
from regogate.proxy.approval._store import ApprovalError
from regogate.proxy.state import redis_call

__all__ = ["RedisApprovalStore"]

#: The longest one Redis round trip may take before the operation fails.
CALL_TIMEOUT: Final = 2.0
#: How long an answered, used or lapsed approval stays readable for `approvals show` and audits.
KEEP_AFTER_EXPIRY: Final = 86400

# KEYS[1] call key; ARGV: approval-key prefix, new id, record, now, ttl seconds.
_REQUEST: Final = """
local id = redis.call('GET', KEYS[1])
if id then
  local raw = redis.call('GET', ARGV[1] .. id)
  if raw then
    local rec = cjson.decode(raw)
    if (rec.status == 'pending' or rec.status == 'approved') and rec.expires > tonumber(ARGV[4]) then
      return raw
    end
  end
end
redis.call('SET', ARGV[1] .. ARGV[2], ARGV[3], 'EX', ARGV[5])
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[5])
return ARGV[3]
"""

# KEYS[1] approval key; ARGV: approve (1/0), by, reason or '', via, now, keep seconds.
_ANSWER: Final = """
local raw = redis.call('GET', KEYS[1])
if not raw then return {'unknown', ''} end
local rec = cjson.decode(raw)
local now = tonumber(ARGV[5])
if rec.status ~= 'pending' then return {rec.status, ''} end
if rec.expires <= now then return {'expired', ''} end
rec.decided_by = ARGV[2]
rec.decided_at = now
rec.via = ARGV[4]
if ARGV[3] ~= '' then rec.reason = ARGV[3] end
if ARGV[1] == '1' then
  rec.status = 'approved'
  rec.expires = now + rec.timeout
else
  rec.status = 'denied'
end
local encoded = cjson.encode(rec)
redis.call('SET', KEYS[1], encoded, 'EX', math.ceil(rec.expires - now) + tonumber(ARGV[6]))
return {'ok', encoded}
"""

# KEYS[1] call key; ARGV: approval-key prefix, now.
_CONSUME: Final = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
local key = ARGV[1] .. id
local raw = redis.call('GET', key)
if not raw then return false end
local rec = cjson.decode(raw)
if rec.status ~= 'approved' or rec.expires <= tonumber(ARGV[2]) then return false end
rec.status = 'used'
local encoded = cjson.encode(rec)
redis.call('SET', key, encoded, 'KEEPTTL')
redis.call('DEL', KEYS[1])
return encoded
"""


def _decode(raw: bytes | str) -> Approval:
    data = json.loads(raw)
    # cjson writes an empty or absent optional as null or leaves it out; Approval wants every field.
    return Approval.from_json({**{k: None for k in ("decided_by", "decided_at", "reason", "via")}, **data})


class RedisApprovalStore:
    """Approvals in the Redis at ``url``, namespaced by ``prefix``."""

    def __init__(self, url: str, prefix: str = "") -> None:
        self._redis: Redis = Redis.from_url(url, socket_connect_timeout=CALL_TIMEOUT, socket_timeout=CALL_TIMEOUT)
        self._approval_prefix = f"{prefix}regogate:approval:"
        self._call_prefix = f"{prefix}regogate:approval-call:"
        self._request = self._redis.register_script(_REQUEST)
        self._answer = self._redis.register_script(_ANSWER)
        self._consume = self._redis.register_script(_CONSUME)

    def _call_key(self, server_id: str, tool: str, digest: str) -> str:
        return f"{self._call_prefix}{json.dumps([server_id, tool, digest])}"

    def _guard(self, action: str) -> AbstractAsyncContextManager[None]:
        return redis_call("approval store redis", action, CALL_TIMEOUT)

    async def request(self, approval: Approval, now: float) -> Approval:
        ttl = math.ceil(approval.expires - now) + KEEP_AFTER_EXPIRY
        async with self._guard("request"):
            raw = await self._request(
                keys=[self._call_key(approval.server_id, approval.tool, approval.digest)],
                args=[self._approval_prefix, approval.id, json.dumps(approval.to_json()), repr(now), str(ttl)],
            )
        return _decode(raw)

    async def answer(
        self, approval_id: str, *, approve: bool, by: str, reason: str | None, via: str, now: float
    ) -> Approval:
        async with self._guard("answer"):
            status, raw = await self._answer(
                keys=[self._approval_prefix + approval_id],
                args=["1" if approve else "0", by, reason or "", via, repr(now), str(KEEP_AFTER_EXPIRY)],
            )
        status = status.decode() if isinstance(status, bytes) else str(status)
        if status == "unknown":
            raise ApprovalError(f"no approval {approval_id!r} (see `regogate approvals list`)")
        if status != "ok":
            raise ApprovalError(f"approval {approval_id} is {status}; only a pending approval can be answered")
        return _decode(raw)

    async def consume(self, server_id: str, tool: str, digest: str, now: float) -> Approval | None:
        async with self._guard("consume"):
            raw = await self._consume(
                keys=[self._call_key(server_id, tool, digest)], args=[self._approval_prefix, repr(now)]
            )
        return None if raw is None else _decode(raw)

    async def get(self, approval_id: str) -> Approval | None:
        async with self._guard("read"):
            raw = await self._redis.get(self._approval_prefix + approval_id)
        return None if raw is None else _decode(raw)

    async def list(self) -> list[Approval]:
        found: list[Approval] = []
        async with self._guard("list"):
            async for key in self._redis.scan_iter(match=self._approval_prefix + "*", count=500):
                raw = await self._redis.get(key)
                if raw is not None:
                    found.append(_decode(raw))
        return sorted(found, key=lambda a: a.created)

    async def aclose(self) -> None:
        with anyio.move_on_after(CALL_TIMEOUT, shield=True):
            await self._redis.aclose()
