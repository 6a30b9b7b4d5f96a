"""Who is calling, verified: ``Authorization: Bearer <JWT>`` checked against a JWKS (file or URL).

The gateway is an OAuth resource server (MCP authorization spec): it checks the signature with a key
of the JWKS (cached; refreshed every ``JWKS_REFRESH`` seconds, and at most every ``JWKS_RETRY`` when a
token names a key it does not know), the algorithm against an allow-list of asymmetric algorithms
(never ``none``, never a shared-secret HS*), the issuer, the audience, and ``exp``/``nbf`` with a
clock skew. A missing or bad token gets 401 with ``WWW-Authenticate`` pointing at the protected
resource metadata. The token itself is never logged, never put in an error, never passed on.

A token that passed is remembered by its exact text (at most ``VERIFIED_TOKENS``), so the same
client's next requests skip the signature check, the largest cost of a request; each reuse checks
again that the token is within ``nbf``/``iat``..``exp`` (with the skew) and that the key that
verified it is still the one the JWKS holds for its ``kid`` (a refreshed JWKS verifies anew).
"""

from __future__ import annotations

import json
import logging
import math
import ssl
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio
import httpx
import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from regogate.core import Clock, ConfigError, SystemClock
from regogate.proxy.transports._flag_rules import ASYMMETRIC_ALGORITHMS, DEFAULT_ALGORITHMS

__all__ = ["ASYMMETRIC_ALGORITHMS", "DEFAULT_ALGORITHMS", "METADATA_PATH", "JwtAuth", "JwtSettings"]

logger = logging.getLogger(__name__)

JWKS_REFRESH = 300.0
"""Keys are fetched again this often, so a rotated key is picked up."""
JWKS_RETRY = 30.0
"""Tokens naming unknown keys refetch the JWKS at most this often (no fetch storm from forged kids);
also the wait before retrying a failed refresh."""
JWKS_UNAVAILABLE_RETRY_AFTER = "30"
"""Seconds a client is told to wait when its token names a key the JWKS could not be fetched for."""
JWKS_TIMEOUT = 5.0
"""Bound on fetching the JWKS."""
MAX_JWKS_BYTES = 1024 * 1024
MAX_TOKEN_BYTES = 16 * 1024
"""A bearer token longer than this is refused unread."""
METADATA_PATH = "/.well-known/oauth-protected-resource"
PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
"""JWK types kept from the JWKS: a shared-secret (``oct``) key never verifies anything here."""
VERIFIED_TOKENS = 256
"""Verified tokens remembered (the least recently used go first): a few MiB at most."""
_NOT_CLAIMS = ("exp", "nbf", "iat", "jti")
"""Token bookkeeping, not facts about the caller: left out of ``input.principal``."""


@dataclass(frozen=True)
class JwtSettings:
    """``--jwks``, ``--issuer``, ``--audience``, ``--algorithms``, ``--clock-skew``."""

    jwks: str
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    clock_skew: float = 60.0

    def check(self) -> None:
        """Raises ``ConfigError`` for an algorithm that is not an asymmetric signature."""
        bad = [a for a in self.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if bad or not self.algorithms:
            allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
            raise ConfigError(f"--algorithms {','.join(bad) or '(empty)'}: only public-key algorithms ({allowed})")


class _KeySet:
    """The JWKS's signing keys by ``kid``, loaded from a file or URL and refreshed.

    Two kinds of refresh, each rate-limited: every ``JWKS_REFRESH`` seconds (sooner, every
    ``JWKS_RETRY``, after a failed one), and when a token names a key not held, at most once per
    ``JWKS_RETRY`` whatever the number of unknown kids. A failed refresh keeps the keys there are.
    """

    def __init__(self, source: str) -> None:
        self._source = source
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self.declared_alg: dict[str | None, str] = {}
        """The ``alg`` a key's JWK names, where it names one."""
        self._loaded_at = -math.inf
        self._unknown_kid_at = -math.inf
        self._lock = anyio.Lock()
        self.failing = False
        """The last attempt to read the JWKS failed: a token naming a key not held cannot be judged now."""

    def _held(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for a token's ``kid`` (a lone key for a token naming none), refreshing when due."""
        now = anyio.current_time()
        if now - self._loaded_at >= JWKS_REFRESH:
            async with self._lock:
                if anyio.current_time() - self._loaded_at >= JWKS_REFRESH:
                    await self.load()
        elif self._held(kid) is None and now - self._unknown_kid_at >= JWKS_RETRY:
            async with self._lock:
                if self._held(kid) is None and anyio.current_time() - self._unknown_kid_at >= JWKS_RETRY:
                    self._unknown_kid_at = anyio.current_time()
                    await self.load()
        return self._held(kid)

    async def load(self) -> None:
        """Fetch or read the JWKS; on failure keep the keys there are (logged).

        Raises:
            ConfigError: at start-up only (no keys yet), when the JWKS cannot be had.
        """
        self._loaded_at = anyio.current_time()
        try:
            data = json.loads(await self._fetch())
            if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
                raise ValueError('not a JWKS (expected an object with a "keys" list)')
            found = jwt.PyJWKSet.from_dict(data).keys
            keys = {k.key_id: k for k in found if k.public_key_use in (None, "sig") and k.key_type in PUBLIC_KEY_TYPES}
            if not keys:
                raise ValueError("no public signing key (RSA, EC or OKP)")
            declared = {
                k.get("kid"): k["alg"] for k in data["keys"] if isinstance(k, dict) and isinstance(k.get("alg"), str)
            }
        except (OSError, ValueError, httpx.HTTPError, jwt.PyJWKSetError, jwt.InvalidKeyError) as exc:
            self.failing = True
            if not self._keys:
                raise ConfigError(f"--jwks {self._shown}: cannot load the keys ({_failure(exc)})") from exc
            self._loaded_at -= JWKS_REFRESH - JWKS_RETRY  # try again sooner than the usual period
            logger.error("--jwks %s: refresh failed (%s); keeping the keys loaded before", self._shown, _failure(exc))
            return
        self._keys, self.declared_alg, self.failing = keys, declared, False

    @property
    def _shown(self) -> str:
        return self._source.split("?", 1)[0]

    async def _fetch(self) -> bytes:
        if not self._source.startswith(("https://", "http://")):
            data = await anyio.Path(self._source).read_bytes()
            if len(data) > MAX_JWKS_BYTES:
                raise ValueError("larger than 1 MiB")
            return data
        timeout = httpx.Timeout(JWKS_TIMEOUT)
        # The system's trust store (OpenSSL honours SSL_CERT_FILE), as for --upstream; no proxy variables.
        verify = ssl.create_default_context()
        async with httpx.AsyncClient(timeout=timeout, verify=verify, follow_redirects=False, trust_env=False) as client:
            with anyio.fail_after(JWKS_TIMEOUT):
                async with client.stream("GET", self._source, headers={"accept": "application/json"}) as response:
                    response.raise_for_status()
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_JWKS_BYTES:
                            raise ValueError("larger than 1 MiB")
                    return bytes(body)


def _failure(exc: BaseException) -> str:
    """A JWKS failure in a few words: never the URL's query (it may hold a secret)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no answer within {JWKS_TIMEOUT:g} s"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}".split(" for url ", 1)[0]
    return f"{type(exc).__name__}: {exc}"


KEYS_UNAVAILABLE = "the issuer's keys cannot be fetched now; try again later"


class _KeysUnavailable(Exception):
    """The token names a key not held and the JWKS could not be refreshed: not the caller's fault."""


@dataclass(frozen=True)
class _Verified:
    """What a verified token established, and for how long it holds."""

    principal: Mapping[str, object]
    kid: str | None
    key: jwt.PyJWK
    valid_from: float
    """Unix seconds: the latest of ``nbf`` and ``iat``, less the skew."""
    valid_until: float
    """Unix seconds: ``exp`` plus the skew."""


class JwtAuth:
    """The gateway's ``Authenticator`` for ``--auth jwt``, and its protected resource metadata."""

    def __init__(self, settings: JwtSettings, clock: Clock | None = None) -> None:
        settings.check()
        self._settings = settings
        self._keys = _KeySet(settings.jwks)
        self._clock = clock or SystemClock()
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    async def start(self) -> None:
        """Load the keys once before serving.

        Raises:
            ConfigError: the JWKS cannot be read or fetched, or holds no usable key.
        """
        await self._keys.load()

    async def __call__(self, request: Request) -> Mapping[str, object] | Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._refuse(request, None, "a bearer token is required")
        token = token.strip()
        if len(token) > MAX_TOKEN_BYTES:
            return self._refuse(request, "invalid_token", "the token is too long")
        known = await self._recall(token)
        if known is not None:
            return dict(known.principal)
        try:
            claims, kid, key = await self._verify(token)
        except _KeysUnavailable:
            logger.warning("a token names a key not held, and the JWKS cannot be fetched now: answered 503")
            body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": KEYS_UNAVAILABLE}}
            headers = {"retry-after": JWKS_UNAVAILABLE_RETRY_AFTER, "cache-control": "no-store"}
            return JSONResponse(body, status_code=503, headers=headers)
        except jwt.PyJWTError as exc:
            logger.info("refused a bearer token: %s", type(exc).__name__)
            return self._refuse(request, "invalid_token", _reason(exc))
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            return self._refuse(request, "invalid_token", "the token has no subject (sub)")
        principal = {k: v for k, v in claims.items() if k not in _NOT_CLAIMS}
        principal["id"] = subject
        validity = self._validity(claims)
        if validity is not None:
            self._remember(token, _Verified(dict(principal), kid, key, *validity))
        return principal

    async def _recall(self, token: str) -> _Verified | None:
        """The remembered verification of ``token``, if it still holds now and its key is still held."""
        known = self._verified.get(token)
        if known is None:
            return None
        now = self._clock.now()
        if not known.valid_from <= now < known.valid_until or await self._keys.key(known.kid) is not known.key:
            self._verified.pop(token, None)
            return None
        if token in self._verified:
            self._verified.move_to_end(token)
        return known

    def _remember(self, token: str, verified: _Verified) -> None:
        self._verified[token] = verified
        self._verified.move_to_end(token)
        while len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)

    def _validity(self, claims: Mapping[str, object]) -> tuple[float, float] | None:
        """(from, until) in unix seconds, read as PyJWT read them (``int``); ``None`` if they cannot be."""
        skew = self._settings.clock_skew
        try:
            starts = [_seconds(claims[name]) for name in ("nbf", "iat") if name in claims]
            until = _seconds(claims["exp"])
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        return max(starts, default=-math.inf) - skew, until + skew

    async def _verify(self, token: str) -> tuple[dict[str, object], str | None, jwt.PyJWK]:
        """The token's claims, and the ``kid`` and key that verified it."""
        header = jwt.get_unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in self._settings.algorithms:
            raise jwt.InvalidAlgorithmError("algorithm not allowed")
        named = header.get("kid")
        kid = named if isinstance(named, str) else None
        key = await self._keys.key(kid)
        if key is None:
            if self._keys.failing:
                raise _KeysUnavailable
            raise jwt.InvalidKeyError("no key in the JWKS for this token")
        declared = self._keys.declared_alg.get(key.key_id)
        if declared is not None and declared != algorithm:
            raise jwt.InvalidAlgorithmError("the key is for another algorithm")
        claims: dict[str, object] = jwt.decode(
            token,
            key=key.key,
            algorithms=[algorithm],
            audience=self._settings.audience,
            issuer=self._settings.issuer,
            leeway=self._settings.clock_skew,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
        return claims, kid, key

    def _refuse(self, request: Request, error: str | None, description: str) -> Response:
        metadata = f"{request.base_url.scheme}://{request.headers.get('host', '')}{METADATA_PATH}"
        challenge = f'Bearer resource_metadata="{metadata}"'
        if error is not None:
            challenge += f', error="{error}", error_description="{description}"'
        body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": f"unauthorized: {description}"}}
        return JSONResponse(body, status_code=401, headers={"www-authenticate": challenge, "cache-control": "no-store"})

    def metadata(self, request: Request) -> Response:
        """RFC 9728 protected resource metadata: which authorization server issues tokens for this gateway."""
        document = {
            "resource": self._settings.audience,
            "authorization_servers": [self._settings.issuer],
            "bearer_methods_supported": ["header"],
            "resource_signing_alg_values_supported": list(self._settings.algorithms),
        }
        return JSONResponse(document)


def _seconds(value: object) -> int:
    """A time claim as PyJWT reads it (``int()`` of a number or of a string of digits).

    Raises:
        TypeError: another kind of value.
        ValueError: a string that is not an integer.
    """
    if not isinstance(value, int | float | str):
        raise TypeError("not a time")
    return int(value)


def _reason(exc: Exception) -> str:
    """What a client is told about its token: the kind of problem, never the token or its claims' values."""
    reasons: Sequence[tuple[type[Exception], str]] = (
        (jwt.ExpiredSignatureError, "the token has expired"),
        (jwt.ImmatureSignatureError, "the token is not valid yet"),
        (jwt.InvalidAudienceError, "the token is for another audience"),
        (jwt.InvalidIssuerError, "the token is from another issuer"),
        (jwt.InvalidAlgorithmError, "the token's algorithm is not allowed"),
        (jwt.InvalidSignatureError, "the token's signature does not verify"),
        (jwt.MissingRequiredClaimError, "the token lacks a required claim"),
        (jwt.InvalidKeyError, "the token's key is not in the JWKS"),
    )
    for kind, text in reasons:
        if isinstance(exc, kind):
            return text
    return "the token cannot be read"
