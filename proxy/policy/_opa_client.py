"""An async client for OPA's Data API: one POST per decision, every failure a coded ``DecisionError``.

The client speaks to OPA through an ``OpaTransport`` (by default ``HttpTransport``, HTTP/1.1 over
reused keep-alive connections; see ``_http.py``). It owns the Data API: query paths, encoding the
input, reading the answer and OPA's error bodies, and the deadline on every request.

``retarget`` moves it to another OPA without dropping requests already in flight: they finish on
the old transport, which is closed once they are done (the embedded sidecar's reload uses it).
A caller whose requests must all reach the same OPA ``hold``s it; a retarget waits for it too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final
from urllib.parse import quote

import anyio
import orjson

from regogate.core import DecisionError
from regogate.proxy.policy._http import HttpTransport, OpaTransport

__all__ = ["DEFAULT_TIMEOUT", "OpaClient", "OpaTarget"]

logger = logging.getLogger(__name__)

#: A decision takes well under a millisecond; the slack only absorbs a slow, loaded CI machine.
DEFAULT_TIMEOUT: Final = 2.0
#: After a retarget, how long requests still on the old OPA may take before its transport is closed.
DRAIN_TIMEOUT: Final = DEFAULT_TIMEOUT + 1.0
#: A builtin error must fail the decision, not quietly make a deny rule undefined.
QUERY_SUFFIX: Final = "?strict-builtin-errors=true"


class OpaTarget:
    """One OPA address with its transport and the requests in flight on it (or holding it)."""

    __slots__ = ("drained", "inflight", "retired", "transport", "url")

    def __init__(self, url: str, transport: OpaTransport | None) -> None:
        self.url = url
        self.transport: OpaTransport = HttpTransport(url) if transport is None else transport
        self.inflight = 0
        self.retired = False
        self.drained = anyio.Event()

    def leave(self) -> None:
        """One request (or hold) on this OPA is over."""
        self.inflight -= 1
        if self.retired and self.inflight == 0:
            self.drained.set()


#: Inputs are trees built from parsed JSON; skipping the cycle check saves a third of the encoding.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)


def _encode(input_doc: object) -> bytes:
    try:
        body = orjson.dumps({"input": input_doc})
    except orjson.JSONEncodeError:  # a big integer, a lone surrogate...: the standard library's path decides
        body = b"null"
    # orjson writes NaN and the infinities as null where the standard library refuses them.
    if b"null" not in body:
        return body
    try:
        return _ENCODER.encode({"input": input_doc}).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise DecisionError("opa_error", f"the input cannot be sent to OPA as JSON: {exc}") from exc


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    answer = dict(pairs)
    if len(answer) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return answer


#: Built once: ``json.loads`` with hooks builds a decoder (and its scanner) per call, a third of a small answer's cost.
_STRICT_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)


def strict_json(content: bytes) -> object:
    """Parse an answer as strict JSON: ``NaN``/``Infinity`` and duplicate keys are refused (``ValueError``)."""
    return _STRICT_DECODER.decode(content.decode("utf-8"))  # UnicodeDecodeError is a ValueError too


def _opa_error(status: int, content: bytes) -> DecisionError:
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        detail = f"OPA answered HTTP {status} {body['code']}: {body.get('message', '')}"
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            detail += f" ({first.get('code')}: {first.get('message')}"
            location = first.get("location")
            if isinstance(location, dict):
                detail += f" at {location.get('file')}:{location.get('row')}"
            detail += ")"
    else:
        detail = f"OPA answered HTTP {status}: {content[:200].decode('utf-8', errors='replace')!r}"
    return DecisionError("opa_error", detail)


class OpaClient:
    """Asks one OPA server for decisions over reused keep-alive connections."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, transport: OpaTransport | None = None) -> None:
        """Prepare a client for ``url``; nothing is connected until the first request.

        ``transport`` replaces the HTTP/1.1 transport to ``url`` (tests inject faults through it).

        Raises:
            ConfigError: ``url`` is neither ``http(s)://host:port`` nor ``unix:///path``.
        """
        self._timeout = timeout
        self._target = OpaTarget(url, transport)
        self._paths: dict[tuple[str, bool], str] = {}

    @property
    def url(self) -> str:
        """The address currently asked."""
        return self._target.url

    async def __aenter__(self) -> OpaClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _query_url(self, path: str, metrics: bool) -> str:
        cache_key = (path, metrics)
        url = self._paths.get(cache_key)
        if url is None:
            segments = [quote(part, safe="") for part in path.strip("/").split("/") if part]
            url = "/v1/data/" + "/".join(segments) + QUERY_SUFFIX + ("&metrics=true" if metrics else "")
            self._paths[cache_key] = url
        return url

    def hold(self) -> OpaTarget:
        """The OPA asked now, held until its ``leave()``: pass it to ``evaluate`` to ask that one again.

        A retarget waits for holders as for requests in flight (at most its drain timeout).
        """
        target = self._target
        target.inflight += 1
        return target

    async def _send(
        self, method: str, target: str, body: bytes = b"", held: OpaTarget | None = None
    ) -> tuple[int, bytes]:
        """One request to the current OPA (or the ``held`` one), bounded by the client's timeout.

        Raises:
            DecisionError: ``opa_unreachable``, ``opa_timeout`` or ``opa_error`` (answer too big).
        """
        current = self._target if held is None else held
        current.inflight += 1
        try:
            return await current.transport.request(method, target, body, deadline=time.monotonic() + self._timeout)
        except TimeoutError as exc:
            raise DecisionError("opa_timeout", f"OPA at {current.url} did not answer in {self._timeout} s") from exc
        finally:
            current.leave()

    async def _query(
        self, path: str, input_doc: object, metrics: bool, held: OpaTarget | None = None
    ) -> dict[str, object]:
        status, content = await self._send("POST", self._query_url(path, metrics), _encode(input_doc), held)
        if status != 200:
            raise _opa_error(status, content)
        try:
            answer = strict_json(content)
        except ValueError as exc:
            raise DecisionError("decision_malformed", f"OPA's answer is not strict JSON: {exc}") from exc
        if not isinstance(answer, dict):
            raise DecisionError("decision_malformed", "OPA's answer is not a JSON object")
        if "result" not in answer:
            raise DecisionError("decision_undefined", f"data.{path.strip('/').replace('/', '.')} is undefined")
        return answer

    async def evaluate(
        self, path: str, input_doc: object, *, held: OpaTarget | None = None
    ) -> tuple[object, str | None]:
        """Evaluate ``data.<path>`` with ``input_doc``; return OPA's result and decision id.

        ``path`` is slash-separated, e.g. ``regogate/gate/decision``. The decision id is ``None``
        unless OPA's decision logging is on. ``held`` (from ``hold``) asks that OPA, not the current one.

        Raises:
            DecisionError: ``opa_unreachable``, ``opa_timeout``, ``opa_error`` (non-200, with OPA's
                code and message), ``decision_undefined`` (no ``result``) or ``decision_malformed``
                (the body is not a JSON object).
        """
        answer = await self._query(path, input_doc, False, held)
        decision_id = answer.get("decision_id")
        return answer["result"], decision_id if isinstance(decision_id, str) else None

    async def evaluate_with_metrics(self, path: str, input_doc: object) -> tuple[object, str | None, int | None]:
        """Like ``evaluate``, also returning OPA's ``timer_rego_query_eval_ns`` (``None`` if absent).

        Raises:
            DecisionError: as ``evaluate``.
        """
        answer = await self._query(path, input_doc, metrics=True)
        decision_id = answer.get("decision_id")
        metrics = answer.get("metrics")
        eval_ns = metrics.get("timer_rego_query_eval_ns") if isinstance(metrics, dict) else None
        return (
            answer["result"],
            decision_id if isinstance(decision_id, str) else None,
            eval_ns if isinstance(eval_ns, int) else None,
        )

    async def health(self, *, bundles: bool = False) -> bool:
        """Whether OPA answers ``GET /health`` (``/health?bundles`` when ``bundles``) with 200."""
        try:
            status, _ = await self._send("GET", "/health?bundles" if bundles else "/health")
        except DecisionError:
            return False
        return status == 200

    async def version(self) -> str:
        """OPA's version, from the labels of ``GET /v1/config``.

        Raises:
            DecisionError: OPA cannot be reached (``opa_unreachable``, ``opa_timeout``) or does not say
                (``opa_error``).
        """
        status, content = await self._send("GET", "/v1/config")
        if status != 200:
            raise _opa_error(status, content)
        try:
            version = strict_json(content)["result"]["labels"]["version"]  # type: ignore[index]
        except (ValueError, KeyError, TypeError) as exc:
            raise DecisionError("opa_error", "OPA's /v1/config does not carry labels.version") from exc
        if not isinstance(version, str):
            raise DecisionError("opa_error", "OPA's /v1/config labels.version is not a string")
        return version

    async def retarget(
        self,
        url: str,
        *,
        drain_timeout: float = DRAIN_TIMEOUT,
        transport: OpaTransport | None = None,
        on_switch: Callable[[], None] | None = None,
    ) -> None:
        """Send new requests to ``url``; return once requests in flight to the old address are done.

        Requests still running (or holds kept) after ``drain_timeout`` seconds are cut off (they fail
        as ``opa_unreachable``); the old transport is then closed. ``transport`` is as in the
        constructor. ``on_switch`` runs at the very moment new requests start going to ``url``, with
        no await in between: what must change together with the OPA changes there.

        Raises:
            ConfigError: ``url`` is not a valid OPA address; the client keeps its old target.
        """
        old = self._target
        self._target = OpaTarget(url, transport)
        if on_switch is not None:
            on_switch()
        await self._retire(old, drain_timeout)

    async def _retire(self, target: OpaTarget, drain_timeout: float) -> None:
        target.retired = True
        with anyio.CancelScope(shield=True):
            if target.inflight:
                with anyio.move_on_after(drain_timeout) as scope:
                    await target.drained.wait()
                if scope.cancelled_caught:
                    logger.warning("closing OPA pool %s with %d requests still in flight", target.url, target.inflight)
            await target.transport.aclose()

    async def aclose(self) -> None:
        """Close the connections; requests in flight are cut off."""
        await self._retire(self._target, drain_timeout=0)
