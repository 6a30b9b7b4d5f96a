"""An async client for OPA's Data API: one POST per decision, every failure a coded ``DecisionError``.

The client reaches OPA over TCP (``http://host:port``) or a unix socket (``unix:///path/opa.sock``).
``retarget`` moves it to another OPA without dropping requests already in flight: they finish on
the old connection pool, which is closed once they are done (the embedded sidecar's reload uses it).
"""

from __future__ import annotations

import json
import logging
from types import TracebackType
from typing import Final
from urllib.parse import quote

import anyio
import httpx

from regogate.proxy._errors import ConfigError, DecisionError

__all__ = ["DEFAULT_TIMEOUT", "OpaClient"]

logger = logging.getLogger(__name__)

#: A decision takes well under a millisecond; the slack only absorbs a slow, loaded CI machine.
DEFAULT_TIMEOUT: Final = 2.0
#: Connecting to a local OPA is immediate when it is up; waiting longer only delays the denial.
CONNECT_TIMEOUT: Final = 1.0
#: After a retarget, how long requests still on the old OPA may take before its pool is closed.
DRAIN_TIMEOUT: Final = DEFAULT_TIMEOUT + 1.0
#: Calls are decided concurrently; a few keep-alive connections cover a proxy's burst.
LIMITS: Final = httpx.Limits(max_connections=16, max_keepalive_connections=8, keepalive_expiry=30.0)
#: The base URL used over a unix socket; the host is never resolved.
UDS_BASE_URL: Final = "http://opa"
#: A builtin error must fail the decision, not quietly make a deny rule undefined.
QUERY_SUFFIX: Final = "?strict-builtin-errors=true"
_JSON_HEADERS: Final = {"Content-Type": "application/json"}


class _Target:
    """One OPA address with its connection pool and the requests in flight on it."""

    __slots__ = ("drained", "http", "inflight", "retired", "url")

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.http = http
        self.inflight = 0
        self.retired = False
        self.drained = anyio.Event()

    def leave(self) -> None:
        self.inflight -= 1
        if self.retired and self.inflight == 0:
            self.drained.set()


def _open(url: str, timeout: float, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    if url.startswith("unix://"):
        path = url.removeprefix("unix://")
        if not path:
            raise ConfigError(f"OPA address {url!r} names no socket path (expected unix:///path/to/opa.sock)")
        base_url = UDS_BASE_URL
        transport = transport or httpx.AsyncHTTPTransport(uds=path, limits=LIMITS)
    elif url.startswith(("http://", "https://")):
        base_url = url.rstrip("/")
        transport = transport or httpx.AsyncHTTPTransport(limits=LIMITS)
    else:
        raise ConfigError(f"OPA address {url!r} must start with http://, https:// or unix://")
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
        limits=LIMITS,
        headers=_JSON_HEADERS,
    )


def _encode(input_doc: object) -> bytes:
    try:
        return json.dumps({"input": input_doc}, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise DecisionError("opa_error", f"the input cannot be sent to OPA as JSON: {exc}") from exc


def _opa_error(response: httpx.Response) -> DecisionError:
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        detail = f"OPA answered HTTP {response.status_code} {body['code']}: {body.get('message', '')}"
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            detail += f" ({first.get('code')}: {first.get('message')}"
            location = first.get("location")
            if isinstance(location, dict):
                detail += f" at {location.get('file')}:{location.get('row')}"
            detail += ")"
    else:
        detail = f"OPA answered HTTP {response.status_code}: {response.text[:200]!r}"
    return DecisionError("opa_error", detail)


class OpaClient:
    """Asks one OPA server for decisions over a reused keep-alive connection pool.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests) for the first target.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Prepare a client for ``url``; nothing is connected until the first request.

        Raises:
            ConfigError: ``url`` is neither ``http(s)://host:port`` nor ``unix:///path``.
        """
        self._timeout = timeout
        self._target = _Target(url, _open(url, timeout, transport))
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

    async def _query(self, path: str, input_doc: object, metrics: bool) -> dict[str, object]:
        body = _encode(input_doc)
        url = self._query_url(path, metrics)
        target = self._target
        if target.http.is_closed:
            raise DecisionError("opa_unreachable", f"the client for OPA at {target.url} is closed")
        target.inflight += 1
        try:
            with anyio.fail_after(self._timeout):
                response = await target.http.post(url, content=body)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise DecisionError("opa_timeout", f"OPA at {target.url} did not answer in {self._timeout} s") from exc
        except httpx.TransportError as exc:
            raise DecisionError("opa_unreachable", f"OPA at {target.url}: {exc!r}") from exc
        finally:
            target.leave()
        if response.status_code != 200:
            raise _opa_error(response)
        try:
            answer = json.loads(response.content)
        except ValueError as exc:
            raise DecisionError("decision_malformed", f"OPA's answer is not JSON: {exc}") from exc
        if not isinstance(answer, dict):
            raise DecisionError("decision_malformed", "OPA's answer is not a JSON object")
        if "result" not in answer:
            raise DecisionError("decision_undefined", f"data.{path.strip('/').replace('/', '.')} is undefined")
        return answer

    async def evaluate(self, path: str, input_doc: object) -> tuple[object, str | None]:
        """Evaluate ``data.<path>`` with ``input_doc``; return OPA's result and decision id.

        ``path`` is slash-separated, e.g. ``regogate/gate/decision``. The decision id is ``None``
        unless OPA's decision logging is on.

        Raises:
            DecisionError: ``opa_unreachable``, ``opa_timeout``, ``opa_error`` (non-200, with OPA's
                code and message), ``decision_undefined`` (no ``result``) or ``decision_malformed``
                (the body is not a JSON object).
        """
        answer = await self._query(path, input_doc, metrics=False)
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
        target = self._target
        if target.http.is_closed:
            return False
        try:
            with anyio.fail_after(self._timeout):
                response = await target.http.get("/health?bundles" if bundles else "/health")
        except (TimeoutError, httpx.TransportError):
            return False
        return response.status_code == 200

    async def version(self) -> str:
        """OPA's version, from the labels of ``GET /v1/config``.

        Raises:
            DecisionError: OPA cannot be reached (``opa_unreachable``, ``opa_timeout``) or does not say
                (``opa_error``).
        """
        target = self._target
        if target.http.is_closed:
            raise DecisionError("opa_unreachable", f"the client for OPA at {target.url} is closed")
        try:
            with anyio.fail_after(self._timeout):
                response = await target.http.get("/v1/config")
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise DecisionError("opa_timeout", f"OPA at {target.url} did not answer in {self._timeout} s") from exc
        except httpx.TransportError as exc:
            raise DecisionError("opa_unreachable", f"OPA at {target.url}: {exc!r}") from exc
        if response.status_code != 200:
            raise _opa_error(response)
        try:
            version = json.loads(response.content)["result"]["labels"]["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DecisionError("opa_error", "OPA's /v1/config does not carry labels.version") from exc
        if not isinstance(version, str):
            raise DecisionError("opa_error", "OPA's /v1/config labels.version is not a string")
        return version

    async def retarget(
        self,
        url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        drain_timeout: float = DRAIN_TIMEOUT,
    ) -> None:
        """Send new requests to ``url``; return once requests in flight to the old address are done.

        Requests still running after ``drain_timeout`` seconds are cut off (they fail as
        ``opa_unreachable``); the old pool is then closed.

        Raises:
            ConfigError: ``url`` is not a valid OPA address; the client keeps its old target.
        """
        old = self._target
        self._target = _Target(url, _open(url, self._timeout, transport))
        await self._retire(old, drain_timeout)

    async def _retire(self, target: _Target, drain_timeout: float) -> None:
        target.retired = True
        with anyio.CancelScope(shield=True):
            if target.inflight:
                with anyio.move_on_after(drain_timeout) as scope:
                    await target.drained.wait()
                if scope.cancelled_caught:
                    logger.warning("closing OPA pool %s with %d requests still in flight", target.url, target.inflight)
            await target.http.aclose()

    async def aclose(self) -> None:
        """Close the connection pool; requests in flight are cut off."""
        await self._retire(self._target, drain_timeout=0)
