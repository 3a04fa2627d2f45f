"""The trusted public keys that verify tokens (design.md section 4), by ``kid``.

From a JWKS file or the auth service's ``/.well-known/jwks.json``; reloaded (rate-limited) when a
token names an unknown ``kid``, so a key rotation needs no restart. Only RS256 signing keys are
kept (:func:`parse_jwks`); :class:`~vigie.auth.verify.TokenVerifier` checks tokens against them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from jose import jwk
from jose.backends.base import Key
from jose.exceptions import JWKError

from vigie.auth.keys import ALGORITHM, read_jwks
from vigie.contract.errors import ConfigError

log = logging.getLogger(__name__)

JWKSLoader = Callable[[], Mapping[str, Any]]


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
