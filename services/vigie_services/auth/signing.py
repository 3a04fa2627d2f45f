"""The auth service's view of its keys directory: the current signing key and the public JWKS.

Both are re-read when their file changes (``vigie keys init --force`` while the service runs), so
a rotation needs no restart; a stat per request is the whole cost.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from vigie.auth.keys import JWKS_FILE, PRIVATE_KEY_FILE, SigningKey, load_signing_key, read_jwks
from vigie.contract.errors import ConfigError

# Only these members are ever published, whatever else the file holds (a private "d" must never
# leave this process by mistake).
PUBLIC_JWK_MEMBERS = ("kty", "kid", "use", "alg", "n", "e")

_Stamp = tuple[int, int]  # (mtime_ns, size)


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


class KeyDirectory:
    """Current :class:`SigningKey` and public JWKS of ``keys_dir``, reloaded on change."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = Path(keys_dir)
        self._lock = threading.Lock()
        self._key: tuple[_Stamp, SigningKey] | None = None
        self._jwks: tuple[_Stamp, dict[str, Any]] | None = None

    def signing_key(self) -> SigningKey:
        """The key to sign with; ConfigError ("run `vigie keys init`") when there is none."""
        path = self.keys_dir / PRIVATE_KEY_FILE
        stamp = _stamp(path)
        cached = self._key
        if stamp is not None and cached is not None and cached[0] == stamp:
            return cached[1]
        with self._lock:
            key = load_signing_key(self.keys_dir)
            if stamp is not None:
                self._key = (stamp, key)
            return key

    def public_jwks(self) -> dict[str, Any]:
        """The JWKS to publish: public members only, and it must list the signing key."""
        path = self.keys_dir / JWKS_FILE
        stamp = _stamp(path)
        cached = self._jwks
        if stamp is not None and cached is not None and cached[0] == stamp:
            return cached[1]
        with self._lock:
            doc = read_jwks(path)
            keys = [
                {m: k[m] for m in PUBLIC_JWK_MEMBERS if m in k}
                for k in doc["keys"]
                if isinstance(k, dict) and k.get("kty") == "RSA"
            ]
            if not keys:
                raise ConfigError(f"{path} lists no RSA key: run `vigie keys init --force`")
            jwks = {"keys": keys}
            if stamp is not None:
                self._jwks = (stamp, jwks)
            return jwks

    def check(self) -> str:
        """Raise ConfigError unless signing works and the JWKS lists the key; return the kid."""
        key = self.signing_key()
        if key.kid not in {k.get("kid") for k in self.public_jwks()["keys"]}:
            raise ConfigError(
                f"{self.keys_dir / JWKS_FILE} does not list the signing key {key.kid}: "
                "run `vigie keys init` to repair it"
            )
        return key.kid
