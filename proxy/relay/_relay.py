"""Relay JSON-RPC messages between client and upstream; only ``tools/call`` and ``tools/list`` are judged.

Every line is parsed once (``decode``: by the relay, or by a source that had to parse it
already and hands that parse over) and what goes out is the relay's own canonical
encoding of the parsed message (``encode``), in both directions, so the server
reads exactly the message that was decided whatever its line reader. A client side
that routes lines (``RoutedSink``) is told what each one is: the answer to which
request, or which server message. Each
``tools/call`` is decided in its own task, so a slow decision never holds up pings or
cancellations, and goes upstream only with an allow verdict in hand. Every open
request lives in the ``Ledger``; an answer from the server that matches no forwarded
request (regogate's own after their timeout included) is dropped.

Refused lines and what the client gets instead of a forward: docs/wire.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TypeVarTuple

import anyio
import anyio.abc

from regogate.core import random_id
from regogate.proxy.relay._asking import ClientAsker
from regogate.proxy.relay._bounded import DECISION_TIMEOUT, BoundedGateway, Elicitor
from regogate.proxy.relay._codec import BadLine, Decoded, decode
from regogate.proxy.relay._framing import MAX_LINE_BYTES, Oversize, PeerClosed, sniff_id
from regogate.proxy.relay._gateway import CallContext, Gateway, Verdict
from regogate.proxy.relay._ledger import Cancel, Ledger, Phase, Refusal, Request
from regogate.proxy.relay._pipes import CarriedSource, ImmediateSink, LineSink, LineSource, ParsedSink, routes
from regogate.proxy.relay._session import Session, call_problem
from regogate.proxy.relay._tools import ToolCatalog
from regogate.proxy.relay._wire import (
    CLIENT_INFO_META_KEY,
    INVALID_REQUEST,
    UPSTREAM_GONE,
    UPSTREAM_MALFORMED,
    call_refused,
    denial_line,
    error_line,
    id_key,
    is_modern,
)

logger = logging.getLogger(__name__)

MAX_PENDING_DECISIONS = 64
"""Decisions in flight at once; beyond it the client reader waits (backpressure, not a queue)."""

EOF_DRAIN_TIMEOUT = 0.5
"""After client EOF, pending decisions get this long before upstream stdin closes; under a host's 2 s."""

SHUTDOWN_SETTLE_TIMEOUT = 1.0
"""Bound on settling calls still in flight when the session ends."""

DEFAULT_DENY_PREFIX = "[POLICY DENIED]"

Args = TypeVarTuple("Args")


class Relay:
    """One client session relayed to one upstream."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        client_in: LineSource,
        client_out: LineSink,
        upstream_in: LineSource,
        upstream_out: LineSink,
        on_client_closed: Callable[[], Awaitable[object]],
        deny_prefix: str = DEFAULT_DENY_PREFIX,
        decision_timeout: float = DECISION_TIMEOUT,
    ) -> None:
        self._gateway = BoundedGateway(gateway, decision_timeout=decision_timeout)
        self._client_in, self._client_out = client_in, client_out
        self._send_answer, self._send_message = routes(client_out)
        self._upstream_in, self._upstream_out = upstream_in, upstream_out
        self._carrier = upstream_out if isinstance(upstream_out, ParsedSink) else None
        if self._carrier is not None:
            self._carrier.attach(self._upstream_message)
        self._pipe = upstream_out if isinstance(upstream_out, ImmediateSink) and self._carrier is None else None
        if self._pipe is not None and isinstance(client_in, CarriedSource):
            client_in.attach_carrier(self._carried_message)
        self._on_client_closed = on_client_closed
        self._deny_prefix = deny_prefix
        self._session = Session()
        self._ledger = Ledger()
        self._asker = ClientAsker(self._to_client)
        self._tools = ToolCatalog(self._to_upstream, self._ledger)
        self._decision_slots = anyio.Semaphore(MAX_PENDING_DECISIONS, fast_acquire=True)
        self._idle: anyio.Event | None = None
        """Set when no call is being decided any more; made only when someone waits for that (at the end)."""
        self._client_closing = False
        self._tg: anyio.abc.TaskGroup | None = None
        self._calls: asyncio.TaskGroup | None = None
        """Where each call's own task runs (``_spawn``)."""

    async def run(self) -> None:
        """Relay until the upstream's stdout ends, or the client left and the upstream was stopped."""
        try:
            async with anyio.create_task_group() as tg, asyncio.TaskGroup() as calls:
                self._tg, self._calls = tg, calls
                tg.start_soon(self._client_pump)
                await self._upstream_pump()
                tg.cancel_scope.cancel()
        finally:
            self._tg = self._calls = None  # a ParsedSink's late message is dropped from here on
            # Forwarded but unanswered: the server may have run them, so their reservations stand.
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_SETTLE_TIMEOUT):
                for request in self._ledger.close():
                    if request.verdict is not None:
                        await self._gateway.settle(request.verdict, True)

    # --- client -> upstream -------------------------------------------------------

    async def _client_pump(self) -> None:
        while (line := await self._client_in.receive()) is not None:
            await self._from_client(line)
        logger.info("client closed stdin")
        await self._client_closed()

    async def _carried_message(self, decoded: Decoded) -> bool:
        """A ``CarriedSource``'s message, in the task that sent it; False: ``receive`` takes it instead.

        Only a ``tools/call`` whose user cannot be asked is taken: it is decided in the sender's task (which
        waits for its answer anyway; a task of its own cost more than the rest of the relay's work on it)
        and, allowed, written upstream at once if the pipe takes it whole, else by a task of its own. So
        the sender never waits on its client (an elicitation) or on a server that stopped reading.
        """
        message = decoded.message
        if self._tg is None or self._client_closing or not isinstance(message, dict):
            return False
        if message.get("method") != "tools/call" or "id" not in message:
            return False
        if self._session.can_elicit(self._session.version(message)):
            return False
        await self._client_request(message, "tools/call", decoded.wire, carried=True)
        return True

    async def _client_closed(self) -> None:
        if self._client_closing:
            return
        self._client_closing = True
        if self._ledger.deciding:
            self._idle = anyio.Event()
            with anyio.move_on_after(EOF_DRAIN_TIMEOUT):  # let calls already sent get their verdicts
                await self._idle.wait()
        await self._upstream_out.aclose()
        await self._on_client_closed()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()

    async def _from_client(self, line: bytes | Oversize | Decoded) -> None:
        if isinstance(line, Decoded):
            decoded = line
        elif isinstance(line, Oversize):
            request_id = sniff_id(line.head)
            reason = f"message larger than {MAX_LINE_BYTES} bytes"
            await self._answer_client(request_id, error_line(request_id, INVALID_REQUEST, reason))
            return
        elif not line.strip():
            return
        else:
            parsed = decode(line)
            if isinstance(parsed, BadLine):
                await self._refuse(parsed)
                return
            decoded = parsed
        message, wire = decoded.message, decoded.wire
        if not isinstance(message, dict):
            reason = "batches are not supported" if isinstance(message, list) else "not a JSON-RPC object"
            await self._answer_client(None, error_line(None, INVALID_REQUEST, f"invalid request: {reason}"))
            return
        if "method" not in message:
            await self._client_response(message, wire)
            return
        method = message["method"]
        if not isinstance(method, str):
            reason = "invalid request: method must be a string"
            await self._refuse(BadLine(INVALID_REQUEST, reason, message.get("id"), has_id="id" in message))
            return
        if "id" in message:
            await self._client_request(message, method, wire)
        elif method == "tools/call":
            logger.warning("dropped a tools/call notification (no id)")
        elif method != "notifications/cancelled" or self._cancel(message):
            await self._to_upstream(wire, message)
            if method == "notifications/initialized":
                self._session.initialized_sent = True
                self._note_handshake()

    async def _refuse(self, bad: BadLine) -> None:
        """Answer a refused line: to the client for its requests, to the server for the client's answers."""
        logger.warning("refused a client line: %s", bad.reason)
        request_id = bad.request_id if bad.has_id else None
        if bad.is_answer:  # a client's answer to a server request: the server must not wait forever either
            if id_key(request_id) is not None:
                await self._to_upstream(error_line(request_id, bad.code, f"regogate refused the answer: {bad.reason}"))
        elif bad.method == "tools/call" and bad.has_id:
            modern = is_modern(self._session.negotiated_version)
            await self._deny_locally(request_id, f"unreadable tools/call: {bad.reason}", modern=modern)
        else:
            await self._answer_client(request_id, error_line(request_id, bad.code, bad.reason))

    async def _client_response(self, message: dict[str, object], wire: bytes) -> None:
        """The client's answer to a server request (passed on), or to regogate's own (kept); else dropped."""
        if "id" not in message or ("result" in message) == ("error" in message):
            logger.warning("dropped a client message that is neither a request nor a response")
            return
        if self._asker.claims(message["id"]):  # regogate asked: never upstream, however late or forged
            self._asker.deliver(message)
            return
        await self._to_upstream(wire, message)

    async def _client_request(
        self, message: dict[str, object], method: str, wire: bytes, *, carried: bool = False
    ) -> None:
        request_id = message["id"]
        try:
            request = self._ledger.receive(request_id, method)
        except Refusal as exc:
            await self._answer_client(request_id, error_line(request_id, INVALID_REQUEST, str(exc)))
            return
        if method == "tools/call":
            await self._start_call(request, message, wire, carried=carried)
            return
        if method == "initialize":
            self._session.initialize_sent(message)
        elif method == "tools/list":
            request.modern = is_modern(self._session.version(message))
        if not await self._to_upstream(wire, message):
            self._ledger.unsent(request)
            await self._answer_client(request_id, error_line(request_id, UPSTREAM_GONE, "upstream server is gone"))

    def _cancel(self, message: dict[str, object]) -> bool:
        """Track a client cancellation; True if it must be forwarded."""
        params = message.get("params")
        if not isinstance(params, dict) or "requestId" not in params:
            return True
        outcome = self._ledger.cancel(params["requestId"])
        return outcome is not Cancel.WITHDRAWN

    async def _start_call(self, request: Request, message: dict[str, object], wire: bytes, *, carried: bool) -> None:
        version = self._session.version(message)
        problem = call_problem(message)
        if problem is not None:
            self._ledger.deny(request)
            await self._deny_locally(request.request_id, problem, modern=is_modern(version))
            return
        try:
            self._decision_slots.acquire_nowait()  # no cancellation check on the way: the usual case
        except anyio.WouldBlock:
            await self._decision_slots.acquire()
        if carried:
            await self._decide(request, message, version, wire, carried=True)
        else:
            self._spawn(self._decide, request, message, version, wire)

    async def _deny_locally(self, request_id: object, reason: str, *, modern: bool) -> None:
        decision_id = random_id()
        logger.warning("denied without asking the gateway (decision %s): %s", decision_id, reason)
        text = f"{self._deny_prefix} {reason}"
        line = denial_line(request_id, text, rule="regogate/invalid_request", decision_id=decision_id, modern=modern)
        await self._answer_client(request_id, line)

    async def _decide(
        self, request: Request, message: dict[str, object], version: object, wire: bytes, *, carried: bool = False
    ) -> None:
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        meta = params.get("_meta")
        meta = meta if isinstance(meta, dict) else {}
        verdict: Verdict | None = None
        try:
            name = str(params["name"])
            if self._tg is None:  # a carried call outlived the session: nothing is decided or sent any more
                return
            tool = await self._tools.entry(name, meta, modern=is_modern(version), tg=self._task_group)
            if request.phase is not Phase.WITHDRAWN:
                info = meta.get(CLIENT_INFO_META_KEY, self._session.client_info)
                arguments = params.get("arguments")
                call = CallContext(
                    request_id=request.request_id,
                    tool_name=name,
                    arguments=arguments if isinstance(arguments, dict) else {},
                    protocol_version=version if isinstance(version, str) else None,
                    client_info=info if isinstance(info, dict) else {},
                    tool=tool,
                    meta=meta,
                )
                verdict = await self._gateway.check(call, self._elicitor(request, meta, version))
        finally:
            self._decision_slots.release()
        await self._deliver(request, verdict, version, wire, message, carried=carried)

    async def _deliver(
        self,
        request: Request,
        verdict: Verdict | None,
        version: object,
        wire: bytes,
        message: dict[str, object],
        *,
        carried: bool = False,
    ) -> None:
        """Act on a verdict: answer a denial, or forward the encoding of the very message decided on."""
        if self._tg is None:  # a carried call outlived the session: its ledger is closed, its client answered
            if verdict is not None and verdict.allowed:
                await self._gateway.settle(verdict, False)
            return
        try:
            if verdict is None or not verdict.allowed:
                if self._ledger.deny(request) and verdict is not None:
                    text = f"{self._deny_prefix} {verdict.message}"
                    line = denial_line(
                        request.request_id,
                        text,
                        rule=verdict.rule,
                        decision_id=verdict.decision_id,
                        modern=is_modern(version),
                    )
                    await self._answer_client(request.request_id, line)
                else:
                    logger.info("call %r cancelled while being decided; not forwarded", request.request_id)
                return
            if not self._ledger.allow(request, verdict):
                logger.info("call %r cancelled while being decided; not forwarded", request.request_id)
                await self._gateway.settle(verdict, False)
                return
        finally:
            if self._idle is not None and not self._ledger.deciding:
                self._idle.set()
        if not carried:
            await self._forward(request, verdict, wire, message)
            return
        assert self._pipe is not None  # calls are carried only to a pipe
        try:
            if self._pipe.try_send(wire):
                return
        except PeerClosed:
            await self._unsent(request, verdict)
            return
        self._spawn(self._forward, request, verdict, wire, message)  # a full pipe is waited on apart

    async def _forward(self, request: Request, verdict: Verdict, wire: bytes, message: dict[str, object]) -> None:
        if not await self._to_upstream(wire, message, carry=True):  # this task may carry the whole exchange
            await self._unsent(request, verdict)

    async def _unsent(self, request: Request, verdict: Verdict) -> None:
        self._ledger.unsent(request)
        await self._gateway.settle(verdict, False)
        gone = error_line(request.request_id, UPSTREAM_GONE, "upstream server is gone")
        await self._answer_client(request.request_id, gone)

    def _elicitor(self, request: Request, meta: dict[str, object], version: object) -> Elicitor | None:
        """How the gateway may ask this call's user, if the client can be asked; the deadline waits for the person."""
        if not self._session.can_elicit(version):
            return None
        return lambda scope: self._asker.elicitor(
            scope,
            grace=self._gateway.decision_timeout,
            progress_token=meta.get("progressToken"),
            withdrawn=lambda: request.phase is Phase.WITHDRAWN,
        )

    # --- upstream -> client -------------------------------------------------------

    async def _upstream_pump(self) -> None:
        while (line := await self._upstream_in.receive()) is not None:
            await self._from_upstream(line)
        logger.info("upstream closed stdout")

    async def _upstream_message(self, line: bytes | Oversize) -> object:
        """A ``ParsedSink``'s message, passed on while the relay runs."""
        if self._tg is None:
            logger.debug("session over; upstream message dropped")
            return None
        return await self._from_upstream(line)

    async def _from_upstream(self, line: bytes | Oversize | Decoded) -> object:
        """Pass one upstream message on; its parsed form (``None`` if it could not be read)."""
        if isinstance(line, Decoded):
            decoded = line
        elif isinstance(line, Oversize):
            await self._unusable_reply(sniff_id(line.head), f"upstream message larger than {MAX_LINE_BYTES} bytes")
            return None
        elif not line.strip():
            return None
        else:
            parsed = decode(line)
            if isinstance(parsed, BadLine):
                request_id = parsed.request_id if parsed.has_id else sniff_id(line)
                await self._unusable_reply(request_id, f"upstream {parsed.reason}")
                return None
            decoded = parsed
        message, wire = decoded.message, decoded.wire
        if not isinstance(message, dict):
            logger.warning("dropped a non-object message from upstream (batches are not relayed)")
            return message
        if "method" in message:
            if message["method"] == "notifications/tools/list_changed":
                self._tools.invalidate()
            await self._message_client(message, wire)
            return message
        request = self._ledger.answer(message.get("id"))
        if request is None:
            logger.warning("dropped an upstream answer that matches no forwarded request")
            return message
        if request.answerer is not None:
            request.answerer(message)
            return message
        await self._answer_client(request.request_id, await self._answer_line(request, message, wire))
        if request.verdict is not None and request.verdict.ticket is not None:
            self._spawn(self._gateway.settle, request.verdict, not call_refused(message))
        return message

    async def _answer_line(self, request: Request, message: dict[str, object], wire: bytes) -> bytes:
        """What the client gets for the server's answer to one of its requests."""
        if request.method == "tools/list":
            return await self._tools.shown(message, wire, self._gateway.hidden, modern=request.modern)
        if request.method == "tools/call" and not isinstance(message.get("result", message.get("error")), dict):
            # An SDK client drops such a reply and waits forever; give it an answer.
            return error_line(request.request_id, UPSTREAM_MALFORMED, "upstream tools/call reply is malformed")
        if request.method == "initialize":
            self._session.initialize_answer(message)
            self._note_handshake()
        return wire

    def _note_handshake(self) -> None:
        if self._session.handshake_done:
            self._tools.handshake_done.set()

    async def _unusable_reply(self, request_id: object, reason: str) -> None:
        """Drop a server line that cannot be relayed; answer the request it was for, if any, with an error."""
        request = self._ledger.answer(request_id)
        if request is None:
            logger.warning("dropped an unusable upstream message: %s", reason)
            return
        logger.warning("answering request %r with an error: %s", request.request_id, reason)
        if request.answerer is not None:
            request.answerer(None)
            return
        await self._answer_client(request.request_id, error_line(request.request_id, UPSTREAM_MALFORMED, reason))
        if request.verdict is not None and request.verdict.ticket is not None:  # no evidence it failed: it stands
            self._spawn(self._gateway.settle, request.verdict, True)

    # --- writing ------------------------------------------------------------------

    async def _to_upstream(self, line: bytes, message: dict[str, object] | None = None, *, carry: bool = False) -> bool:
        try:
            if message is not None and self._carrier is not None:
                await self._carrier.send_parsed(line, message, carry=carry)
            else:
                await self._upstream_out.send(line)
        except PeerClosed:
            logger.debug("upstream stdin is closed; message dropped")
            return False
        return True

    async def _to_client(self, line: bytes) -> None:
        try:
            await self._client_out.send(line)
        except PeerClosed:
            self._client_gone()

    async def _answer_client(self, request_id: object, line: bytes) -> None:
        try:
            await self._send_answer(request_id, line)
        except PeerClosed:
            self._client_gone()

    async def _message_client(self, message: dict[str, object], line: bytes) -> None:
        try:
            await self._send_message(message, line)
        except PeerClosed:
            self._client_gone()

    def _client_gone(self) -> None:
        logger.info("client closed stdout")
        self._task_group.start_soon(self._client_closed)

    def _spawn(self, work: Callable[[*Args], Coroutine[object, object, object]], *args: *Args) -> None:
        """Run one call's ``work(*args)`` in a task of its own, inside the relay's run.

        On an asyncio task group nested in the relay's anyio one: anyio's ``start_soon`` cost ~70 µs per
        task here against ~20 µs (bench/notes.md), and each tools/call has one. Such a task is cancelled,
        and its failure raised, with the relay's run, as the anyio group's are. A native cancellation
        passes anyio's shields: it comes only when the session ends, which is also the one thing that
        may cut short an HTTP upstream's shielded hand-on of a server message (``_http_handoff``).
        """
        assert self._calls is not None, "only while run() is active"
        self._calls.create_task(work(*args))

    @property
    def _task_group(self) -> anyio.abc.TaskGroup:
        assert self._tg is not None, "only while run() is active"
        return self._tg
