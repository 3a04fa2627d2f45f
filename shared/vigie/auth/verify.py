"""Token verification for every Vigie service (design.md section 4).

:class:`TokenVerifier`: ``verify(token) -> Principal`` or
:class:`~vigie.contract.errors.Unauthorized` with a short precise message, against the keys of a
:class:`~vigie.auth.keyset.KeySet`. Successful verifications are cached until the token expires:
this runs on every request. The FastAPI dependencies that call it are
:class:`~vigie.auth.authenticator.Authenticator`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from jose import jwt
from jose.exceptions import ExpiredSignatureError, JWTError

from vigie.auth.keys import ALGORITHM
from vigie.auth.keyset import KeySet
from vigie.contract.errors import Unauthorized

# A JWT this long is not one of ours; refuse before parsing anything.
MAX_TOKEN_CHARS = 8192
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "nbf", "iat")


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
