"""Dev signing keys and token issuance (design.md section 4).

Layout of a keys directory (``VigieSettings.resolved_keys_dir``, git-ignored)::

    private.pem   the current RSA-2048 private key, PKCS#8, mode 0600
    jwks.json     the public keys verifiers trust: the current key first, then the previous one

Rotation (``init_keys(dir, force=True)``) keeps the previous public key in ``jwks.json`` so tokens
signed before the rotation stay valid until they expire. ``kid`` is the RFC 7638 thumbprint of the
public key, so the same key always gets the same id, wherever it is computed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from vigie.contract.errors import ConfigError

ALGORITHM = "RS256"
PRIVATE_KEY_FILE = "private.pem"
JWKS_FILE = "jwks.json"
RSA_KEY_BITS = 2048
# How many keys jwks.json lists: the current one and the one it replaced.
JWKS_KEEP = 2

# RFC 6749 section 3.3: scope tokens are printable ASCII without space, '"' or '\'.
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


@dataclass(frozen=True)
class SigningKey:
    """The private key tokens are signed with, and its ``kid``."""

    kid: str
    private_pem: str = field(repr=False)  # never in logs or tracebacks


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_to_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The public JWK of ``public_key``, with its RFC 7638 thumbprint as ``kid``."""
    numbers = public_key.public_numbers()
    jwk = {"kty": "RSA", "n": _int_to_b64url(numbers.n), "e": _int_to_b64url(numbers.e)}
    return {**jwk, "kid": jwk_thumbprint(jwk), "use": "sig", "alg": ALGORITHM}


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an RSA JWK: only e, kty, n count."""
    if jwk.get("kty") != "RSA":
        raise ValueError(f"only RSA keys are supported, not kty={jwk.get('kty')!r}")
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def _load_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"cannot read the signing key {path}: {exc}; run `vigie keys init --force` "
            "to generate a new one"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{path} is not an RSA private key; run `vigie keys init --force`")
    return key


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write via a temp file + rename: readers never see a half-written key or JWKS."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)  # O_CREAT's mode is filtered by the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_jwks(path: Path) -> dict[str, Any]:
    """The JWKS document at ``path``; ConfigError when missing or not a JWKS."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"no JWKS at {path}: run `vigie keys init`") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the JWKS {path}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ConfigError(f'{path} is not a JWKS (expected {{"keys": [...]}})')
    return doc


def _existing_public_keys(jwks_path: Path) -> list[dict[str, Any]]:
    if not jwks_path.is_file():
        return []
    try:
        return [k for k in read_jwks(jwks_path)["keys"] if isinstance(k, dict)]
    except ConfigError:
        return []  # a broken JWKS is rewritten from the private key


def _write_jwks(jwks_path: Path, current: dict[str, str], previous: list[dict[str, Any]]) -> None:
    keys: list[dict[str, Any]] = [current]
    keys += [k for k in previous if k.get("kid") != current["kid"]][: JWKS_KEEP - 1]
    _write_atomic(jwks_path, (json.dumps({"keys": keys}, indent=2) + "\n").encode(), 0o644)


def init_keys(keys_dir: Path, *, force: bool = False) -> str:
    """Make sure ``keys_dir`` holds a signing key and its JWKS; return the current ``kid``.

    Idempotent: existing keys are kept (and ``jwks.json`` repaired if it lost the current key).
    With ``force``, rotate: a new private key becomes current and ``jwks.json`` lists it first,
    then the previous public key.
    """
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_path, jwks_path = keys_dir / PRIVATE_KEY_FILE, keys_dir / JWKS_FILE
    existing = _existing_public_keys(jwks_path)

    if private_path.exists() and not force:
        current = public_jwk(_load_private_key(private_path).public_key())
        if not existing or existing[0].get("kid") != current["kid"]:
            _write_jwks(jwks_path, current, existing)
        return current["kid"]

    previous = existing
    if private_path.exists():
        try:
            old = public_jwk(_load_private_key(private_path).public_key())
            previous = [old, *existing]
        except ConfigError:
            pass  # an unreadable old key cannot have signed anything we must keep trusting
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    current = public_jwk(key.public_key())
    # JWKS first: a token signed with the new key must never meet a JWKS that lacks it.
    _write_jwks(jwks_path, current, previous)
    _write_atomic(private_path, _private_pem(key), 0o600)
    return current["kid"]


def load_signing_key(keys_dir: Path) -> SigningKey:
    """The current signing key of ``keys_dir``; ConfigError telling what to do when missing."""
    path = Path(keys_dir) / PRIVATE_KEY_FILE
    if not path.is_file():
        raise ConfigError(f"no signing key at {path}: run `vigie keys init`")
    key = _load_private_key(path)
    kid = public_jwk(key.public_key())["kid"]
    return SigningKey(kid=kid, private_pem=_private_pem(key).decode())


def parse_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes from a space-separated string or an iterable of strings (each may hold several).

    Order kept, duplicates dropped; ValueError on a token RFC 6749 does not allow.
    """
    items = [scopes] if isinstance(scopes, str) else list(scopes)
    out: dict[str, None] = {}
    for item in items:
        for token in item.split():
            if not _SCOPE_TOKEN.match(token):
                raise ValueError(f"invalid scope {token!r}")
            out[token] = None
    return tuple(out)


def issue_token(
    key: SigningKey,
    *,
    sub: str,
    scopes: Iterable[str],
    ttl_s: int,
    issuer: str = "vigie",
    audience: str = "vigie",
    now: float | None = None,
) -> str:
    """A signed RS256 JWT for ``sub`` with ``scopes``, valid from now for ``ttl_s`` seconds."""
    if not sub:
        raise ValueError("sub must not be empty")
    if ttl_s <= 0:
        raise ValueError(f"ttl must be positive, got {ttl_s}")
    iat = int(time.time() if now is None else now)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "scope": " ".join(parse_scopes(scopes)),
        "iat": iat,
        "nbf": iat,
        "exp": iat + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.private_pem, algorithm=ALGORITHM, headers={"kid": key.kid})


_TTL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(value: str | int) -> int:
    """Seconds from ``"1h"``, ``"30m"``, ``"900s"``, ``"900"`` (or ``"2d"``); ValueError else."""
    if isinstance(value, int):
        seconds = value
    else:
        match = _TTL.match(value)
        if not match:
            raise ValueError(f"invalid duration {value!r}: use e.g. 900, 900s, 30m, 1h")
        seconds = int(match.group(1)) * _TTL_UNITS[match.group(2).lower()]
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds
