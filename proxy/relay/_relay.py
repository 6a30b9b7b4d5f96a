"""Relay JSON-RPC lines between client and upstream; only ``tools/call`` and ``tools/list`` are touched.

Every other message keeps its original bytes and its order. Each ``tools/call`` is
decided in its own task, so a slow decision never holds up pings or cancellations.
A call goes upstream only with an allow verdict in hand.

Client lines that are not a single JSON object are answered here and never forwarded:
invalid JSON gets ``-32700``; a batch (a JSON array; batching was removed in MCP
2025-06-18) or any other non-object gets one ``-32600`` error with ``id: null``; an
object with duplicate keys gets ``-32600`` (or a denial if it is a ``tools/call``),
because parsers disagree on which duplicate wins and the upstream must not see a
different call than the gateway judged.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc

from regogate.proxy.relay._framing import LineReader, LineWriter, Oversize, PeerClosed, sniff_id
from regogate.proxy.relay._gateway import CallContext, Gateway, Verdict
from regogate.proxy.relay._tools import ToolCatalog
from regogate.proxy.relay._wire import (
    CLIENT_INFO_META_KEY,
    INVALID_REQUEST,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
    UPSTREAM_GONE,
    UPSTREAM_MALFORMED,
    AmbiguousJSON,
    Key,
    call_succeeded,
    denial_line,
    dumps,
    error_line,
    id_key,
    is_modern,
    loads_strict,
)

logger = logging.getLogger(__name__)

DECISION_TIMEOUT = 10.0
"""Outer bound on one gateway decision; the gateway's own OPA timeout should fire well before."""

SETTLE_TIMEOUT = 5.0
"""Bound on reporting an outcome (audit, rate-limit rollback); it runs in its own task."""

HIDDEN_TOOLS_TIMEOUT = 5.0
"""Bound on the tools/list filter; on timeout every tool on that page is hidden (fail closed)."""

MAX_PENDING_DECISIONS = 64
"""Decisions in flight at once; beyond it the client reader waits (backpressure, not a queue)."""

EOF_DRAIN_TIMEOUT = 0.5
"""After client EOF, pending decisions get this long before upstream stdin closes; under a host's 2 s."""

SHUTDOWN_SETTLE_TIMEOUT = 1.0
"""Bound on rolling back calls still in flight when the session ends."""

DEFAULT_DENY_PREFIX = "[POLICY DENIED]"


@dataclass
class _Session:
    """What the relay learnt about the session from the messages it passed along."""

    negotiated_version: str | None = None
    client_info: dict[str, object] = field(default_factory=dict)
    initialize_answered: bool = False
    initialized_sent: bool = False


class Relay:
    """One client session relayed to one upstream."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        client_in: LineReader,
        client_out: LineWriter,
        upstream_in: LineReader,
        upstream_out: LineWriter,
        on_client_closed: Callable[[], Awaitable[object]],
        deny_prefix: str = DEFAULT_DENY_PREFIX,
        decision_timeout: float = DECISION_TIMEOUT,
    ) -> None:
        self._gateway = gateway
        self._client_in, self._client_out = client_in, client_out
        self._upstream_in, self._upstream_out = upstream_in, upstream_out
        self._on_client_closed = on_client_closed
        self._deny_prefix = deny_prefix
        self._decision_timeout = decision_timeout
        self._session = _Session()
        self._requests: dict[Key, str] = {}  # client request id -> method, until answered
        self._deciding: set[Key] = set()
        self._cancelled: set[Key] = set()  # cancelled by the client while being decided
        self._inflight: dict[Key, Verdict] = {}
        self._tools = ToolCatalog(self._to_upstream)
        self._decision_slots = anyio.Semaphore(MAX_PENDING_DECISIONS, fast_acquire=True)
        self._idle = anyio.Event()
        self._idle.set()
        self._client_closing = False
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(self) -> None:
        """Relay until the upstream's stdout ends, or the client left and the upstream was stopped."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._client_pump)
                await self._upstream_pump()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_SETTLE_TIMEOUT):
                for verdict in self._inflight.values():
                    await self._settle(verdict, succeeded=False)
                self._inflight.clear()

    # --- client -> upstream -------------------------------------------------------

    async def _client_pump(self) -> None:
        while (line := await self._client_in.receive()) is not None:
            await self._from_client(line)
        logger.info("client closed stdin")
        await self._client_closed()

    async def _client_closed(self) -> None:
        if self._client_closing:
            return
        self._client_closing = True
        with anyio.move_on_after(EOF_DRAIN_TIMEOUT):  # let calls already sent get their verdicts
            await self._idle.wait()
        await self._upstream_out.aclose()
        await self._on_client_closed()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()

    async def _from_client(self, line: bytes | Oversize) -> None:
        if isinstance(line, Oversize):
            await self._to_client(error_line(sniff_id(line.head), INVALID_REQUEST, "message too large"))
            return
        if not line.strip():
            return
        try:
            message = loads_strict(line)
        except AmbiguousJSON:
            await self._ambiguous(line)
            return
        except ValueError:
            await self._to_client(error_line(None, PARSE_ERROR, "parse error: not a JSON object"))
            return
        if not isinstance(message, dict):
            reason = "batches are not supported" if isinstance(message, list) else "not a JSON-RPC object"
            await self._to_client(error_line(None, INVALID_REQUEST, f"invalid request: {reason}"))
            return
        method = message.get("method")
        if method == "tools/call":
            await self._start_call(message, line)
            return
        if isinstance(method, str) and "id" in message:
            self._note_request(message, method)
        elif method == "notifications/cancelled" and self._cancel(message):
            return
        await self._to_upstream(line)
        if method == "notifications/initialized":
            self._session.initialized_sent = True
            self._check_handshake()

    async def _ambiguous(self, line: bytes) -> None:
        message = json.loads(line)
        if not isinstance(message, dict) or "id" not in message or "method" not in message:
            logger.warning("dropped a client message with duplicate keys")
            return
        if message.get("method") == "tools/call":
            modern = is_modern(self._version(message))
            await self._deny_locally(message["id"], "ambiguous JSON: duplicate object keys", modern=modern)
        else:
            await self._to_client(error_line(message["id"], INVALID_REQUEST, "duplicate object keys"))

    def _note_request(self, message: dict[str, object], method: str) -> None:
        key = id_key(message["id"])
        if key is not None:
            self._requests[key] = method
        params = message.get("params")
        if method == "initialize" and isinstance(params, dict):
            info = params.get("clientInfo")
            self._session.client_info = info if isinstance(info, dict) else {}

    def _cancel(self, message: dict[str, object]) -> bool:
        """Track a client cancellation; True if it must not be forwarded."""
        params = message.get("params")
        key = id_key(params.get("requestId")) if isinstance(params, dict) else None
        if key is None:
            return False
        if key in self._deciding:
            self._cancelled.add(key)
            return True
        if self._requests.get(key) != "tools/list":  # a late tools/list reply must still be filtered
            self._requests.pop(key, None)
        verdict = self._inflight.pop(key, None)
        if verdict is not None:
            self._task_group.start_soon(self._settle, verdict, False)
        return False

    async def _start_call(self, message: dict[str, object], line: bytes) -> None:
        if "id" not in message:
            logger.warning("dropped a tools/call notification (no id)")
            return
        request_id = message["id"]
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        meta = params.get("_meta")
        meta = meta if isinstance(meta, dict) else {}
        version = self._version(message)
        problem = self._call_problem(message, request_id)
        if problem is not None:
            await self._deny_locally(request_id, problem, modern=is_modern(version))
            return
        key = id_key(request_id)
        assert key is not None and isinstance(request_id, str | int)
        self._deciding.add(key)
        self._idle = anyio.Event()
        await self._decision_slots.acquire()
        self._task_group.start_soon(self._decide, key, request_id, params, meta, version, line)

    def _version(self, message: dict[str, object]) -> object:
        """The request's own protocol version (2026-07-28 era), else the negotiated one."""
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        if isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta:
            return meta[PROTOCOL_VERSION_META_KEY]
        return self._session.negotiated_version

    def _call_problem(self, message: dict[str, object], request_id: object) -> str | None:
        params = message.get("params")
        if not isinstance(params, dict):
            return "invalid tools/call: params must be an object"
        name = params.get("name")
        if not isinstance(name, str) or not name:
            return "invalid tools/call: no tool name"
        if not isinstance(params.get("arguments", {}), dict | None):
            return "invalid tools/call: arguments must be an object"
        if "_meta" in params and not isinstance(params["_meta"], dict):
            return "invalid tools/call: _meta must be an object"
        key = id_key(request_id)
        if key is None:
            return "invalid tools/call: id must be a string or an integer"
        if key in self._deciding or key in self._inflight:
            return "invalid tools/call: id is already in use"
        return None

    async def _deny_locally(self, request_id: object, reason: str, *, modern: bool) -> None:
        decision_id = uuid.uuid4().hex
        logger.warning("denied without asking the gateway (decision %s): %s", decision_id, reason)
        text = f"{self._deny_prefix} {reason}"
        line = denial_line(request_id, text, rule="regogate/invalid_request", decision_id=decision_id, modern=modern)
        await self._to_client(line)

    async def _decide(
        self,
        key: Key,
        request_id: str | int,
        params: dict[str, object],
        meta: dict[str, object],
        version: object,
        line: bytes,
    ) -> None:
        try:
            name = str(params["name"])
            tool = await self._tools.entry(name, meta, modern=is_modern(version), tg=self._task_group)
            if key in self._cancelled:
                self._decided(key)
                return
            info = meta.get(CLIENT_INFO_META_KEY, self._session.client_info)
            arguments = params.get("arguments")
            call = CallContext(
                request_id=request_id,
                tool_name=name,
                arguments=arguments if isinstance(arguments, dict) else {},
                protocol_version=version if isinstance(version, str) else None,
                client_info=info if isinstance(info, dict) else {},
                tool=tool,
                meta=meta,
            )
            verdict = await self._check(call)
        finally:
            self._decision_slots.release()
        cancelled = key in self._cancelled
        self._decided(key)
        if cancelled:
            logger.info("call %r cancelled while being decided; not forwarded", request_id)
            if verdict.allowed:
                await self._settle(verdict, succeeded=False)
            return
        if not verdict.allowed:
            text = f"{self._deny_prefix} {verdict.message}"
            modern = is_modern(version)
            await self._to_client(
                denial_line(request_id, text, rule=verdict.rule, decision_id=verdict.decision_id, modern=modern)
            )
            return
        self._inflight[key] = verdict
        self._requests[key] = "tools/call"
        if not await self._to_upstream(line):
            self._requests.pop(key, None)
            if self._inflight.pop(key, None) is not None:
                await self._settle(verdict, succeeded=False)
                await self._to_client(error_line(request_id, UPSTREAM_GONE, "upstream server is gone"))

    def _decided(self, key: Key) -> None:
        self._deciding.discard(key)
        self._cancelled.discard(key)
        if not self._deciding:
            self._idle.set()

    async def _check(self, call: CallContext) -> Verdict:
        try:
            with anyio.fail_after(self._decision_timeout):
                return await self._gateway.check_call(call)
        except Exception as exc:  # boundary: a gateway fault is a denial, never a forward
            logger.error("gateway failed on %r: %r; denying", call.tool_name, exc)
            return Verdict(False, "policy decision failed", "regogate/gateway_error", uuid.uuid4().hex)

    async def _settle(self, verdict: Verdict, succeeded: bool) -> None:
        try:
            with anyio.fail_after(SETTLE_TIMEOUT):
                await self._gateway.settle(verdict, succeeded=succeeded)
        except Exception as exc:  # boundary: an outcome report must not end the session
            logger.error("gateway settle failed for decision %s: %r", verdict.decision_id, exc)

    # --- upstream -> client -------------------------------------------------------

    async def _upstream_pump(self) -> None:
        while (line := await self._upstream_in.receive()) is not None:
            await self._from_upstream(line)
        logger.info("upstream closed stdout")

    async def _from_upstream(self, line: bytes | Oversize) -> None:
        if isinstance(line, Oversize):
            await self._unusable_reply(sniff_id(line.head), "upstream reply too large")
            return
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except ValueError:
            await self._unusable_reply(sniff_id(line), "upstream reply is not JSON")
            return
        if not isinstance(message, dict):
            logger.warning("dropped a non-object message from upstream (batches are not relayed)")
            return
        if "method" in message:
            if message["method"] == "notifications/tools/list_changed":
                self._tools.invalidate()
            await self._to_client(line)
            return
        if self._tools.deliver(message):
            return
        request_id = message.get("id")
        key = id_key(request_id)
        method = self._requests.pop(key, None) if key is not None else None
        if method == "tools/list":
            line = await self._filter_tools(message, line)
        elif method == "tools/call" and not isinstance(message.get("result", message.get("error")), dict):
            # An SDK client drops such a reply and waits forever; give it an answer.
            line = error_line(request_id, UPSTREAM_MALFORMED, "upstream tools/call reply is malformed")
        elif method == "initialize":
            self._note_initialized(message)
        await self._to_client(line)
        if method == "tools/call" and key is not None and (verdict := self._inflight.pop(key, None)):
            self._task_group.start_soon(self._settle, verdict, call_succeeded(message))

    def _note_initialized(self, message: dict[str, object]) -> None:
        result = message.get("result")
        if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
            self._session.negotiated_version = result["protocolVersion"]
            self._session.initialize_answered = True
            self._check_handshake()

    def _check_handshake(self) -> None:
        if self._session.initialize_answered and self._session.initialized_sent:
            self._tools.handshake_done.set()

    async def _unusable_reply(self, request_id: str | int | None, reason: str) -> None:
        key = id_key(request_id)
        if key is None or self._requests.pop(key, None) is None:
            logger.warning("dropped an unusable upstream message: %s", reason)
            return
        logger.warning("answering request %r with an error: %s", request_id, reason)
        await self._to_client(error_line(request_id, UPSTREAM_MALFORMED, reason))
        if (verdict := self._inflight.pop(key, None)) is not None:
            self._task_group.start_soon(self._settle, verdict, False)

    async def _filter_tools(self, message: dict[str, object], line: bytes) -> bytes:
        if "error" in message:
            return line
        result = message.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            # Unfilterable means unsafe to show: answer with an error instead.
            return error_line(message.get("id"), UPSTREAM_MALFORMED, "upstream tools/list result is malformed")
        entries = self._tools.learn(result["tools"])
        try:
            with anyio.fail_after(HIDDEN_TOOLS_TIMEOUT):
                hidden = await self._gateway.hidden_tools(entries)
        except Exception as exc:  # boundary: cannot filter, so hide the whole page
            logger.error("gateway hidden_tools failed: %r; hiding every tool on this page", exc)
            hidden = {str(e["name"]) for e in entries}
        if not hidden:
            return line
        result["tools"] = [t for t in result["tools"] if not (isinstance(t, dict) and t.get("name") in hidden)]
        return dumps(message)

    # --- writing ------------------------------------------------------------------

    async def _to_upstream(self, line: bytes) -> bool:
        try:
            await self._upstream_out.send(line)
        except PeerClosed:
            logger.debug("upstream stdin is closed; message dropped")
            return False
        return True

    async def _to_client(self, line: bytes) -> None:
        try:
            await self._client_out.send(line)
        except PeerClosed:
            logger.info("client closed stdout")
            self._task_group.start_soon(self._client_closed)

    @property
    def _task_group(self) -> anyio.abc.TaskGroup:
        assert self._tg is not None, "only while run() is active"
        return self._tg
