"""Token verification for every Vigie service (design.md section 4).

Three pieces, from the bottom up:

- :class:`KeySet`: the trusted public keys by ``kid``, from a JWKS file or the auth service's
  ``/.well-known/jwks.json``; reloaded (rate-limited) when a token names an unknown ``kid``, so a
  key rotation needs no restart.
- :class:`TokenVerifier`: ``verify(token) -> Principal`` or
  :class:`~vigie.contract.errors.Unauthorized`
  with a short precise message. Successful verifications are cached until the token expires: this
  runs on every request.
- :class:`Authenticator`: FastAPI dependencies, ``Depends(auth.requires("predict:turbine-nox"))``
  returns the :class:`Principal`, 401 without a valid token, 403 without the scope.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jose import jwk, jwt
from jose.backends.base import Key
from jose.exceptions import ExpiredSignatureError, JWKError, JWTError

from vigie.auth.keys import ALGORITHM, read_jwks
from vigie.contract.errors import ConfigError, Forbidden, Unauthorized
from vigie.settings import VigieSettings

log = logging.getLogger(__name__)

# A JWT this long is not one of ours; refuse before parsing anything.
MAX_TOKEN_CHARS = 8192
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "nbf", "iat")

JWKSLoader = Callable[[], Mapping[str, Any]]


@dataclass(frozen=True)
class Principal:
    """Who called: the token's subject, its scopes and every claim."""

    sub: str
    scopes: frozenset[str]
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def expires_at(self) -> int:
        return int(self.claims.get("exp", 0))

    @property
    def token_id(self) -> str | None:
        jti = self.claims.get("jti")
        return jti if isinstance(jti, str) else None


# --------------------------------------------------------------------------------------- keys


def parse_jwks(doc: Mapping[str, Any], *, source: str) -> dict[str, Key]:
    """The RS256 signing keys of a JWKS document, by kid; ValueError when none is usable.

    Keys for other algorithms or uses are skipped (with a warning): the verifier pins RS256.
    """
    raw = doc.get("keys")
    if not isinstance(raw, list):
        raise ValueError(f'{source} is not a JWKS (expected {{"keys": [...]}})')
    keys: dict[str, Key] = {}
    for item in raw:
        if not isinstance(item, dict):
            continue
        kid = item.get("kid")
        if not isinstance(kid, str) or not kid:
            log.warning("%s: skipping a key without kid", source)
            continue
        if item.get("kty") != "RSA" or item.get("alg", ALGORITHM) != ALGORITHM:
            log.warning("%s: skipping key %s (not an RSA %s key)", source, kid, ALGORITHM)
            continue
        if item.get("use", "sig") != "sig":
            log.warning("%s: skipping key %s (use is not sig)", source, kid)
            continue
        if "d" in item:
            # A private key published by mistake: refuse rather than trust a leaked key.
            raise ValueError(f"{source}: key {kid} contains private material")
        try:
            keys[kid] = jwk.construct(item, ALGORITHM)
        except (JWKError, ValueError, TypeError) as exc:
            raise ValueError(f"{source}: key {kid} is invalid: {exc}") from exc
    if not keys:
        raise ValueError(f"{source} holds no RSA {ALGORITHM} signing key")
    return keys


class KeySet:
    """Trusted public keys by ``kid``, reloadable from their source.

    ``refresh_if_due()`` reloads at most once per ``min_refresh_interval_s`` (so a flood of tokens
    with made-up kids cannot turn into a flood of fetches); a failed reload keeps the keys we have.
    """

    def __init__(
        self,
        keys: Mapping[str, Key],
        *,
        source: str,
        loader: JWKSLoader | None = None,
        min_refresh_interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys: dict[str, Key] = dict(keys)
        self.source = source
        self._loader = loader
        self._min_interval = min_refresh_interval_s
        self._clock = clock
        self._last_load = clock()
        self._lock = threading.Lock()
        self.loads = 1  # how many times the source was read (tests and debugging)

    @classmethod
    def from_jwks(cls, doc: Mapping[str, Any], *, source: str = "inline JWKS") -> KeySet:
        try:
            return cls(parse_jwks(doc, source=source), source=source)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    @classmethod
    def from_file(cls, path: Path, *, min_refresh_interval_s: float = 1.0) -> KeySet:
        """Keys from a JWKS file (re-read on an unknown kid: reading a local file is cheap)."""
        path = Path(path)
        source = str(path)

        def load() -> Mapping[str, Any]:
            return read_jwks(path)

        try:
            keys = parse_jwks(load(), source=source)
        except ValueError as exc:
            raise ConfigError(f"{exc}; run `vigie keys init` or fix VIGIE_JWT_PUBLIC_KEYS") from exc
        return cls(keys, source=source, loader=load, min_refresh_interval_s=min_refresh_interval_s)

    @classmethod
    def from_url(
        cls, url: str, *, timeout_s: float = 5.0, min_refresh_interval_s: float = 30.0
    ) -> KeySet:
        """Keys fetched from ``url`` now (ConfigError if that fails) and again on unknown kids."""

        def load() -> Mapping[str, Any]:
            response = httpx.get(url, timeout=timeout_s, headers={"Accept": "application/json"})
            response.raise_for_status()
            doc = response.json()
            if not isinstance(doc, dict):
                raise ValueError(f"{url} did not answer a JSON object")
            return doc

        try:
            keys = parse_jwks(load(), source=url)
        except (httpx.HTTPError, ValueError) as exc:
            raise ConfigError(
                f"cannot load the JWKS from {url}: {exc}; start the auth service first, "
                "fix VIGIE_JWKS_URL, or set VIGIE_JWT_PUBLIC_KEYS to a JWKS file"
            ) from exc
        return cls(keys, source=url, loader=load, min_refresh_interval_s=min_refresh_interval_s)

    def get(self, kid: str) -> Key | None:
        return self._keys.get(kid)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def refresh_due(self) -> bool:
        return self._loader is not None and self._clock() - self._last_load >= self._min_interval

    def refresh_if_due(self) -> bool:
        """Reload from the source unless done recently; True when the keys were replaced."""
        if not self.refresh_due():
            return False
        with self._lock:
            if not self.refresh_due():  # another thread just did it
                return False
            assert self._loader is not None
            self._last_load = self._clock()
            self.loads += 1
            try:
                keys = parse_jwks(self._loader(), source=self.source)
            except (httpx.HTTPError, ConfigError, ValueError, json.JSONDecodeError) as exc:
                log.warning("reloading the JWKS from %s failed, keeping %d keys: %s",
                            self.source, len(self._keys), exc)  # fmt: skip
                return False
            # One assignment: readers on other threads see the old dict or the new one.
            self._keys = keys
            log.info("reloaded the JWKS from %s: kids %s", self.source, sorted(keys))
            return True


# ----------------------------------------------------------------------------------- verifier


@dataclass(frozen=True)
class _Cached:
    principal: Principal
    exp: float


def _echo(value: object, limit: int = 40) -> str:
    """An attacker-chosen header value, made safe to repeat in a message and in the
    ``WWW-Authenticate`` header (RFC 6750 error_description charset, no quotes, bounded)."""
    text = value if isinstance(value, str) else json.dumps(value)
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-_.~+/=:" else "?" for c in text)
    return safe[:limit] + ("..." if len(safe) > limit else "")


def _token_header(token: str) -> dict[str, Any]:
    if not token:
        raise Unauthorized("missing bearer token", error="invalid_request")
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise Unauthorized("malformed token")
    try:
        header = jwt.get_unverified_header(token)
    except JWTError:
        raise Unauthorized("malformed token") from None
    if not isinstance(header, dict):
        raise Unauthorized("malformed token")
    return header


def _claims_error_message(exc: JWTError) -> str:
    """python-jose's claim errors, in our words."""
    text = str(exc)
    if isinstance(exc, ExpiredSignatureError):
        return "token expired"
    if "missing required key" in text:
        claim = text.split('"')[1] if text.count('"') >= 2 else "?"
        return f"token missing claim {claim}"
    known = {
        "not yet valid": "token not yet valid",
        "Invalid audience": "wrong audience",
        "Invalid issuer": "wrong issuer",
        "Signature verification failed": "signature verification failed",
        "(iat) must be": "claim iat must be an integer",
        "(nbf) must be": "claim nbf must be an integer",
        "(exp) must be": "claim exp must be an integer",
        "Subject must be": "claim sub must be a string",
        "JWT ID must be": "claim jti must be a string",
        "Invalid claim format": "invalid aud claim",
        "Invalid payload": "malformed token",
    }
    for needle, message in known.items():
        if needle in text:
            return message
    return "invalid token"


class TokenVerifier:
    """Verifies RS256 JWTs against a :class:`KeySet`; thread-safe.

    Checks, in order, each failure an :class:`~vigie.contract.errors.Unauthorized`: shape;
    ``alg`` is RS256 (before any key is touched, so ``none`` and HS256-with-the-public-key never
    get near a key); ``kid`` present and known; signature; ``iss``, ``aud``, ``exp``, ``nbf``,
    ``iat``, ``sub`` present and valid (``exp``/``nbf`` with ``leeway_s``).

    A token that verified is cached until its ``exp`` (at most ``cache_size`` tokens, oldest
    evicted first). Consequence: a key dropped from the JWKS keeps its already-seen tokens valid
    until they expire, as any stateless JWT would anyway.
    """

    def __init__(
        self,
        keyset: KeySet,
        *,
        issuer: str = "vigie",
        audience: str = "vigie",
        leeway_s: int = 10,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keyset = keyset
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._clock = clock
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._options = {
            "verify_signature": True,
            "leeway": leeway_s,
            **{f"require_{claim}": True for claim in REQUIRED_CLAIMS},
        }
        self.verifications = 0  # full (uncached) verifications attempted
        self.cache_hits = 0

    # The public entry points differ only in how a JWKS reload runs: inline, or on a worker
    # thread so the event loop never waits on an HTTP fetch.

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; Unauthorized otherwise."""
        cached = self._cached(token)
        if cached is not None:
            return cached
        kid = self._checked_kid(_token_header(token))
        if self.keyset.get(kid) is None:
            self.keyset.refresh_if_due()
        return self._verify_with(token, kid)

    async def averify(self, token: str) -> Principal:
        """:meth:`verify` for async code: a JWKS reload runs on a worker thread."""
        cached = self._cached(token)
        if cached is not None:
            return cached
        kid = self._checked_kid(_token_header(token))
        if self.keyset.get(kid) is None and self.keyset.refresh_due():
            await anyio.to_thread.run_sync(self.keyset.refresh_if_due)
        return self._verify_with(token, kid)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def _cached(self, token: str) -> Principal | None:
        entry = self._cache.get(token)
        if entry is None:
            return None
        if entry.exp <= self._clock():
            with self._lock:
                self._cache.pop(token, None)
            return None
        self.cache_hits += 1
        return entry.principal

    def _checked_kid(self, header: Mapping[str, Any]) -> str:
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise Unauthorized(f"algorithm {_echo(alg)} not allowed" if alg else "missing alg")
        if "crit" in header:
            raise Unauthorized("unsupported critical header parameters")  # RFC 7515 4.1.11
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("missing key id (kid) in token header")
        return kid

    def _verify_with(self, token: str, kid: str) -> Principal:
        key = self.keyset.get(kid)
        if key is None:
            raise Unauthorized(f"unknown signing key id {_echo(kid, 64)}")
        self.verifications += 1
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options=self._options,
            )
        except JWTError as exc:
            raise Unauthorized(_claims_error_message(exc)) from None
        except (ValueError, TypeError):  # e.g. non-UTF-8 payload bytes
            raise Unauthorized("malformed token") from None
        principal = _principal(claims)
        self._remember(token, principal)
        return principal

    def _remember(self, token: str, principal: Principal) -> None:
        with self._lock:
            self._cache[token] = _Cached(principal, float(principal.expires_at))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _principal(claims: Mapping[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("token missing claim sub")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise Unauthorized("claim scope must be a space-separated string")
    return Principal(sub=sub, scopes=frozenset(scope.split()), claims=dict(claims))


# ------------------------------------------------------------------------------ FastAPI glue

# Declares the bearer scheme in OpenAPI (the /docs "Authorize" button); we read the header
# ourselves for precise errors, so it never raises.
_bearer_scheme = HTTPBearer(auto_error=False, scheme_name="bearer", description="JWT from auth")


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>``; Unauthorized when absent or not Bearer."""
    header = request.headers.get("authorization")
    if not header or not header.strip():
        raise Unauthorized("missing bearer token", error="invalid_request")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("authorization scheme must be Bearer", error="invalid_request")
    token = value.strip()
    if not token:
        raise Unauthorized("missing bearer token", error="invalid_request")
    return token


class Authenticator:
    """Builds FastAPI dependencies that authenticate and authorize requests.

    Usage::

        auth = Authenticator.from_settings(settings)

        @app.post("/v1/predict")
        async def predict(principal: Principal = Depends(auth.requires("predict:turbine-nox"))):
            ...

    The principal is also left on ``request.state.principal`` (for logs and audit).
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    @classmethod
    def from_settings(cls, settings: VigieSettings) -> Authenticator:
        """From ``settings.jwks_url`` when set, else the JWKS file; ConfigError when unusable."""
        if settings.jwks_url:
            keyset = KeySet.from_url(settings.jwks_url)
        else:
            keyset = KeySet.from_file(settings.resolved_jwks_path)
        return cls(
            TokenVerifier(
                keyset,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                leeway_s=settings.jwt_leeway_s,
            )
        )

    async def authenticate(self, request: Request) -> Principal:
        """The principal of the request's bearer token, whatever its scopes."""
        principal = await self.verifier.averify(bearer_token(request))
        request.state.principal = principal
        return principal

    async def authorize(self, request: Request, scope: str) -> Principal:
        """The principal, if its token is valid (401) and grants ``scope`` (403). For hot routes
        that skip dependency injection; :meth:`requires` wraps it for the others."""
        principal = await self.authenticate(request)
        if not principal.has(scope):
            raise Forbidden(f"token lacks scope {scope}", scope=scope)
        return principal

    def requires(self, scope: str) -> Callable[..., Awaitable[Principal]]:
        """A dependency returning the principal; 401 without a valid token, 403 without scope."""

        async def dependency(
            request: Request,
            _credentials: HTTPAuthorizationCredentials | None = Security(_bearer_scheme),
        ) -> Principal:
            return await self.authorize(request, scope)

        dependency.__name__ = f"requires_{scope.replace(':', '_').replace('-', '_')}"
        return dependency
