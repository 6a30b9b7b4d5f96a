"""The life of every request the relay carries, kept in one place with named transitions.

A client request is *received* (``receive``). A ``tools/call`` is then *deciding*
until its verdict: ``allow`` moves it to *forwarded*, ``deny`` ends it. A cancel
while deciding *withdraws* it: it will never go upstream, and its verdict, when it
comes, is released. Any other request is forwarded as it is received. A forwarded
request ends when the server *answers* it (``answer``), or when the session ends
(``close``); a cancel after forwarding is noted but changes nothing, because the
server may already be running the call. regogate's own requests (``private``) live
here too, so a client can never reuse their ids, and are *forgotten* on timeout, after
which a late answer matches nothing and is dropped like any answer to an unknown id.

The ledger is plain synchronous state: the relay asks it, then acts.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from regogate.proxy.relay._gateway import Verdict
from regogate.proxy.relay._wire import Key, id_key

MAX_OPEN_REQUESTS = 4096
"""Requests open at once (deciding or awaiting an answer); beyond it new ones are refused, not queued."""


class Phase(enum.Enum):
    DECIDING = "deciding"
    """A tools/call waiting for its verdict; nothing of it has gone upstream."""
    WITHDRAWN = "withdrawn"
    """Cancelled by the client while deciding; it will never go upstream."""
    FORWARDED = "forwarded"
    """Written (or being written) upstream; the server owes an answer."""


class Cancel(enum.Enum):
    """What a client's ``notifications/cancelled`` did."""

    WITHDRAWN = "withdrawn"
    """The call was still being decided: swallow the cancellation, never forward the call."""
    PASSED_ON = "passed_on"
    """The request is upstream: forward the cancellation; the reservation stands."""
    UNKNOWN = "unknown"
    """No open client request has that id: forward the cancellation, nothing else changes."""


class Refusal(Exception):
    """A request the ledger will not open; ``str()`` is the reason for the client."""


Answerer = Callable[[dict[str, object] | None], None]
"""Receives the answer to a private request (``None`` if the server's line was unusable)."""


@dataclass(eq=False)
class Request:
    """One open request."""

    key: Key
    request_id: str | int
    method: str
    phase: Phase
    verdict: Verdict | None = None
    """The allow verdict a forwarded tools/call carries until it is settled."""
    cancelled: bool = False
    """The client cancelled it after it was forwarded."""
    answerer: Answerer | None = None
    """Set for regogate's own requests, which are answered to it, never to the client."""
    modern: bool = False
    """A tools/list of the 2026-07-28 era (its answer carries a ``cacheScope``)."""


class Ledger:
    """Open requests by id; every change of phase goes through one of its methods."""

    def __init__(self, limit: int = MAX_OPEN_REQUESTS) -> None:
        self._open: dict[Key, Request] = {}
        self._limit = limit
        self._deciding = 0

    def __len__(self) -> int:
        return len(self._open)

    @property
    def deciding(self) -> int:
        """Calls still waiting for a verdict (withdrawn ones included)."""
        return self._deciding

    def _open_request(self, request_id: object, method: str, phase: Phase) -> Request:
        key = id_key(request_id)
        if key is None:
            raise Refusal("invalid request: id must be a string or an integer (within 2^53)")
        if key in self._open:
            raise Refusal("invalid request: id is already in use by a request in flight")
        if len(self._open) >= self._limit:
            raise Refusal(f"invalid request: more than {self._limit} requests in flight")
        assert isinstance(request_id, str | int)
        request = Request(key, request_id, method, phase)
        self._open[key] = request
        if phase is Phase.DECIDING:
            self._deciding += 1
        return request

    def receive(self, request_id: object, method: str) -> Request:
        """Open a client request: a tools/call starts deciding, anything else is forwarded as it comes.

        Raises:
            Refusal: the id is not a string or integer, is in flight already, or too many are open.
        """
        return self._open_request(request_id, method, Phase.DECIDING if method == "tools/call" else Phase.FORWARDED)

    def private(self, request_id: str, method: str, answerer: Answerer) -> Request:
        """Open one of regogate's own requests, answered to ``answerer``.

        Raises:
            Refusal: the id is in flight (cannot happen with unguessable ids) or too many are open.
        """
        request = self._open_request(request_id, method, Phase.FORWARDED)
        request.answerer = answerer
        return request

    def _end_decision(self, request: Request) -> None:
        assert request.phase in (Phase.DECIDING, Phase.WITHDRAWN), request.phase
        self._deciding -= 1
        del self._open[request.key]

    def allow(self, request: Request, verdict: Verdict) -> bool:
        """An allow verdict arrived: forward the call (True), or release it if it was withdrawn (False)."""
        if request.phase is Phase.WITHDRAWN:
            self._end_decision(request)
            return False
        assert request.phase is Phase.DECIDING, request.phase
        self._deciding -= 1
        request.phase, request.verdict = Phase.FORWARDED, verdict
        return True

    def deny(self, request: Request) -> bool:
        """The call is answered here (denied or refused); False if the client had withdrawn it already."""
        withdrawn = request.phase is Phase.WITHDRAWN
        self._end_decision(request)
        return not withdrawn

    def cancel(self, request_id: object) -> Cancel:
        """The client cancelled ``request_id``."""
        key = id_key(request_id)
        request = self._open.get(key) if key is not None else None
        if request is None or request.answerer is not None:
            return Cancel.UNKNOWN
        if request.phase is Phase.DECIDING:
            request.phase = Phase.WITHDRAWN
            return Cancel.WITHDRAWN
        if request.phase is Phase.WITHDRAWN:
            return Cancel.WITHDRAWN
        request.cancelled = True
        return Cancel.PASSED_ON

    def answer(self, request_id: object) -> Request | None:
        """The server answered ``request_id``: the forwarded request it ends, or ``None`` (drop the answer)."""
        key = id_key(request_id)
        request = self._open.get(key) if key is not None else None
        if request is None or request.phase is not Phase.FORWARDED:
            return None  # never forwarded (or long gone): the server cannot be answering it
        del self._open[request.key]
        return request

    def unsent(self, request: Request) -> None:
        """The write upstream failed: the server never saw the request."""
        assert request.phase is Phase.FORWARDED, request.phase
        self._open.pop(request.key, None)

    def forget(self, request: Request) -> None:
        """Stop waiting for a private request; a late answer will match nothing."""
        if self._open.get(request.key) is request:
            del self._open[request.key]

    def close(self) -> list[Request]:
        """End the session: every request still open, removed."""
        left = list(self._open.values())
        self._open.clear()
        self._deciding = 0
        return left
