"""The replay's HTTP client session: credentials, TLS trust, access tokens and sending batches.

:class:`TokenSource` fetches OAuth2 client-credentials tokens from ``auth`` and renews them before
they expire; :class:`Sender` posts one batch to a service's ``/v1/predict`` with one
``Idempotency-Key`` reused by each of its retries (:mod:`vigie.client.replay.policy`), a new token
once on a 401, and says how it ended (:class:`Outcome`).
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from vigie.client.replay.policy import (
    TRANSIENT,
    RetryPolicy,
    certificate_refused,
    retry_after_s,
    retryable,
)
from vigie.contract.replay import ReplayRequest

CREDENTIALS_FILE = "replay-client.json"  # in the keys dir (var/keys), by the fleet launcher
NETWORK = "network"  # the errors_by_status key of batches that never got an HTTP answer
USER_AGENT = "vigie-replay/1"


class ReplayError(Exception):
    """The replay cannot start or go on (no credentials, token refused...); the message says why."""


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)


def load_credentials(
    client_id: str | None, client_secret: str | None, keys_dir: Path, scope: str
) -> Credentials:
    """The given id and secret, else ``<keys_dir>/replay-client.json`` (the dev client the fleet
    launcher registers); a ReplayError that says how to register a client when there are none."""
    if client_id and client_secret:
        return Credentials(client_id, client_secret)
    if client_id or client_secret:
        raise ReplayError("give both --client-id and --client-secret (or neither)")
    path = keys_dir / CREDENTIALS_FILE
    if not path.is_file():
        raise ReplayError(
            f"no client credentials: pass --client-id and --client-secret (or set "
            f"VIGIE_CLIENT_ID and VIGIE_CLIENT_SECRET), or write {path} as "
            f'{{"client_id": "...", "client_secret": "..."}}. Register a client with: '
            f'vigie clients add replay-client --scope "{scope}"'
        )
    try:
        doc = json.loads(path.read_text())
        return Credentials(str(doc["client_id"]), str(doc["client_secret"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReplayError(
            f'{path}: expected {{"client_id": "...", "client_secret": "..."}} ({exc})'
        ) from None


def tls_verify(cacert: Path | None, insecure: bool, var_dir: Path) -> ssl.SSLContext | bool:
    """What httpx verifies the gateway with: nothing (``insecure``), only ``cacert`` (like curl
    ``--cacert``), else the system CAs plus the dev gateway certificate when it exists."""
    if insecure:
        return False
    if cacert is not None:
        return ssl.create_default_context(cafile=str(cacert))
    dev = var_dir / "tls" / "gateway.crt"
    if not dev.is_file():
        return True
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(dev))
    return context


@dataclass(frozen=True)
class ErrorInfo:
    """What the error envelope ``{"error": {"code", "message", "details"}}`` said."""

    code: str
    message: str
    details: list[Any]

    @classmethod
    def of(cls, response: httpx.Response) -> ErrorInfo:
        try:
            error = response.json()["error"]
            return cls(str(error["code"]), str(error["message"]), list(error.get("details") or []))
        except (ValueError, KeyError, TypeError):
            return cls(f"http_{response.status_code}", response.text[:200], [])


class TokenSource:
    """Access tokens for one client and scope, fetched from ``auth`` and renewed a little before
    ``expires_in`` runs out (10 % of the lifetime, at most 60 s early)."""

    def __init__(
        self,
        http: httpx.Client,
        url: str,
        credentials: Credentials,
        scope: str,
        policy: RetryPolicy,
    ) -> None:
        self._http, self._url, self._credentials, self._scope = http, url, credentials, scope
        self._policy = policy
        self._token: str | None = None
        self._renew_at = 0.0
        self.fetches = 0

    def token(self) -> str:
        if self._token is None or time.monotonic() >= self._renew_at:
            self._fetch()
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        """Forget the token (the service refused it): the next :meth:`token` fetches one."""
        self._token = None

    def _fetch(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret,
            "scope": self._scope,
        }
        for retry in range(self._policy.max_retries + 1):
            last = retry == self._policy.max_retries
            try:
                response = self._http.post(self._url, data=form)
            except TRANSIENT as exc:
                if last or certificate_refused(exc):
                    raise ReplayError(f"cannot get a token from {self._url}: {exc!r}") from None
                time.sleep(self._policy.delay(retry))
                continue
            if response.status_code == 200:
                break
            if not retryable(response) or last:
                err = ErrorInfo.of(response)
                raise ReplayError(
                    f"token request refused by {self._url}: {response.status_code} "
                    f"{err.code}: {err.message}"
                )
            time.sleep(self._policy.delay(retry, retry_after_s(response)))
        try:
            body = response.json()
            token, lifetime = str(body["access_token"]), float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise ReplayError(f"unexpected token response from {self._url}: {exc!r}") from None
        self._token = token
        self._renew_at = time.monotonic() + lifetime - min(60.0, lifetime / 10)
        self.fetches += 1


@dataclass
class Outcome:
    """How one batch ended (after its retries)."""

    status: int | None  # None: no HTTP answer (connection error or timeout every time)
    retries: int = 0
    replayed: bool = False  # answered from the idempotency store (Idempotent-Replayed: true)
    latency_s: float | None = None  # of the final answered attempt
    body: dict[str, Any] | None = None
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


class Sender:
    """Posts batches to one service's ``/v1/predict`` (retries: see :mod:`vigie.client.replay`)."""

    def __init__(
        self, http: httpx.Client, url: str, tokens: TokenSource, policy: RetryPolicy
    ) -> None:
        self._http, self._url, self._tokens, self._policy = http, url, tokens, policy

    def send(self, request: ReplayRequest) -> Outcome:
        """Send one batch until it is answered for good; raises ReplayError only when no token
        can be had."""
        body = {"asset_id": request.asset_id, "measurements": request.measurements}
        content = json.dumps(body, separators=(",", ":")).encode()  # same bytes on every retry
        key = str(uuid.uuid4())
        retries, renewed = 0, False
        while True:
            headers = {
                "Authorization": f"Bearer {self._tokens.token()}",
                "Content-Type": "application/json",
                "Idempotency-Key": key,
            }
            started = time.monotonic()
            try:
                response = self._http.post(self._url, content=content, headers=headers)
            except TRANSIENT as exc:
                if retries >= self._policy.max_retries or certificate_refused(exc):
                    return Outcome(None, retries, error=ErrorInfo(NETWORK, repr(exc), []))
                time.sleep(self._policy.delay(retries))
                retries += 1
                continue
            latency = time.monotonic() - started
            if response.status_code == 401 and not renewed:
                renewed = True  # expired or revoked early: one new token, same key
                self._tokens.invalidate()
                continue
            if retryable(response) and retries < self._policy.max_retries:
                time.sleep(self._policy.delay(retries, retry_after_s(response)))
                retries += 1
                continue
            return self._outcome(response, retries, latency)

    @staticmethod
    def _outcome(response: httpx.Response, retries: int, latency: float) -> Outcome:
        replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        outcome = Outcome(response.status_code, retries, replayed, latency)
        if not 200 <= response.status_code < 300:
            outcome.error = ErrorInfo.of(response)
            return outcome
        try:
            outcome.body = response.json()
        except ValueError:
            outcome.error = ErrorInfo("bad_response", "the answer is not JSON", [])
        return outcome
