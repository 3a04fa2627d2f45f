"""Good and bad tokens for tests, signed with throw-away keys.

Typical use against a service under test::

    from tests.support.tokens import BAD_TOKEN_KINDS, EXPECTED_MESSAGES, TokenForge

    forge = TokenForge(tmp_path / "keys")   # runs init_keys there
    settings = VigieSettings(var_dir=tmp_path, keys_dir=forge.keys_dir)  # trusts forge.jwks_path
    headers = forge.headers(scopes=["predict:turbine-nox"])            # a valid bearer token

    @pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
    def test_rejects(kind): ...  # forge.forge(kind, scopes=[...]) -> 401, EXPECTED_MESSAGES[kind]

    forge.forge(MISSING_SCOPE)  # valid, but only an unrelated scope -> 403

Every bad token is otherwise valid and carries the ``scopes`` you pass, so the failure is the
intended one. The ``token_forge`` fixture (session-scoped) can be imported into a conftest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from vigie.auth.keys import JWKS_FILE, init_keys, issue_token, load_signing_key

ISSUER = "vigie"
AUDIENCE = "vigie"
UNRELATED_SCOPE = "vigie:unrelated-test-scope"

# Kinds that must be refused with 401, and the words the refusal must contain.
EXPECTED_MESSAGES: dict[str, str] = {
    "expired": "token expired",
    "not_yet_valid": "token not yet valid",
    "wrong_signature": "signature verification failed",
    "tampered_payload": "signature verification failed",
    "unknown_kid": "unknown signing key id",
    "missing_kid": "missing key id",
    "alg_none": "algorithm none not allowed",
    "hs256_public_key": "algorithm HS256 not allowed",
    "wrong_audience": "wrong audience",
    "wrong_issuer": "wrong issuer",
    "missing_exp": "token missing claim exp",
    "missing_sub": "token missing claim sub",
    "garbage": "malformed token",
    "garbage_segments": "malformed token",
}
BAD_TOKEN_KINDS: list[str] = list(EXPECTED_MESSAGES)

# A valid token without the scope the route needs: must be refused with 403.
MISSING_SCOPE = "missing_scope"

# Generating RSA keys is slow-ish: one attacker key per process is enough.
_ATTACKER_KEY: rsa.RSAPrivateKey | None = None


def _attacker_pem() -> str:
    global _ATTACKER_KEY
    if _ATTACKER_KEY is None:
        _ATTACKER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _ATTACKER_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def b64url_json(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TokenForge:
    """Issues valid tokens from a keys directory of its own, and forges every bad kind."""

    def __init__(self, keys_dir: Path, *, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.keys_dir = Path(keys_dir)
        self.kid = init_keys(self.keys_dir)
        self.key = load_signing_key(self.keys_dir)
        self.issuer = issuer
        self.audience = audience

    @property
    def jwks_path(self) -> Path:
        """The JWKS a verifier must trust (``VigieSettings(jwt_public_keys=...)``)."""
        return self.keys_dir / JWKS_FILE

    @property
    def public_pem(self) -> bytes:
        """The signing key's public half, as PEM: what an HS256 confusion attack uses."""
        private = serialization.load_pem_private_key(self.key.private_pem.encode(), password=None)
        return private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # ------------------------------------------------------------------------- good tokens

    def token(
        self, scopes: Iterable[str] = (), *, sub: str = "test-client", ttl_s: int = 3600
    ) -> str:
        """A valid token, issued exactly as production issues them."""
        return issue_token(
            self.key,
            sub=sub,
            scopes=list(scopes),
            ttl_s=ttl_s,
            issuer=self.issuer,
            audience=self.audience,
        )

    def headers(self, scopes: Iterable[str] = (), *, sub: str = "test-client") -> dict[str, str]:
        return bearer(self.token(scopes, sub=sub))

    def claims(self, scopes: Iterable[str] = (), **overrides: Any) -> dict[str, Any]:
        """A valid claims set; ``overrides`` replace claims, a value of None drops the claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "test-client",
            "scope": " ".join(scopes),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "jti": "test-jti",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(
        self,
        claims: dict[str, Any],
        *,
        kid: str | None = "",
        private_pem: str | None = None,
    ) -> str:
        """RS256-sign ``claims``; ``kid`` "" means ours, None means no kid header."""
        headers = None if kid is None else {"kid": kid or self.kid}
        return jwt.encode(
            claims, private_pem or self.key.private_pem, algorithm="RS256", headers=headers
        )

    # -------------------------------------------------------------------------- bad tokens

    def forge(self, kind: str, scopes: Iterable[str] = ()) -> str:
        """A token of ``kind`` (one of BAD_TOKEN_KINDS or MISSING_SCOPE)."""
        scopes = list(scopes)
        now = int(time.time())
        if kind == "expired":
            return self.sign(self.claims(scopes, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
        if kind == "not_yet_valid":
            return self.sign(self.claims(scopes, nbf=now + 3600, exp=now + 7200))
        if kind == "wrong_signature":
            return self.sign(self.claims(scopes), private_pem=_attacker_pem())
        if kind == "tampered_payload":
            signed_header, _payload, signature = self.token(scopes).split(".")
            escalated = self.claims([*scopes, "models:admin"])
            return f"{signed_header}.{b64url_json(escalated)}.{signature}"
        if kind == "unknown_kid":
            return self.sign(self.claims(scopes), kid="unknown-kid", private_pem=_attacker_pem())
        if kind == "missing_kid":
            return self.sign(self.claims(scopes), kid=None)
        if kind == "alg_none":
            unsigned = {"alg": "none", "typ": "JWT", "kid": self.kid}
            return f"{b64url_json(unsigned)}.{b64url_json(self.claims(scopes))}."
        if kind == "hs256_public_key":
            return self.hs256(self.claims(scopes), secret=self.public_pem)
        if kind == "wrong_audience":
            return self.sign(self.claims(scopes, aud="someone-else"))
        if kind == "wrong_issuer":
            return self.sign(self.claims(scopes, iss="https://evil.example"))
        if kind == "missing_exp":
            return self.sign(self.claims(scopes, exp=None))
        if kind == "missing_sub":
            return self.sign(self.claims(scopes, sub=None))
        if kind == "garbage":
            return "this-is-not-a-jwt"
        if kind == "garbage_segments":
            return "aGVsbG8.d29ybGQ.c2lnbmF0dXJl"  # three segments, header not JSON
        if kind == MISSING_SCOPE:
            return self.token([UNRELATED_SCOPE])
        raise ValueError(f"unknown token kind {kind!r}")

    def hs256(self, claims: dict[str, Any], *, secret: bytes) -> str:
        """HS256 by hand (python-jose refuses a PEM as HMAC secret, attackers do not)."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.fixture(scope="session")
def token_forge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenForge]:
    """One forge (and keys directory) per test session."""
    yield TokenForge(tmp_path_factory.mktemp("vigie-keys"))
