"""``vigie replay``: replay a CSV of real measurements through the gateway, as an integration would.

The service turns the CSV into predict requests (:meth:`vigie.contract.service.PredictionService.
replay_requests`); this module sends them the way a SCADA or historian client should:

* **tokens** (:class:`TokenSource`): OAuth2 client credentials from ``auth``, renewed before they
  expire (``expires_in``) and once more when a request gets a 401;
* **pacing** (:class:`Pacer`): ``rate`` rows per second on an absolute monotonic schedule (row
  *k* is due at ``start + k / rate``), so the time spent sending never adds up into drift; after
  a stall the replay catches up. ``rate`` 0 sends as fast as the service answers;
* **retries** (:class:`Sender`): one ``Idempotency-Key`` per batch, reused by each of its
  retries; connection errors, timeouts, 429, 502, 503 and 504 are retried with exponential
  backoff and jitter (``Retry-After`` is honoured when given), and so is the 409 with
  ``Retry-After`` the runtime answers while an earlier attempt of the same key is still running.
  Any other answer is final: a 4xx is reported and counted, and the replay goes on;
* **summary** (:class:`Summary`): rows, requests, retries, idempotent replays, errors by status
  (``network`` when no answer came), predictions per level, latency percentiles.

Where requests go is a :data:`Route`: ``piece, path -> URL``. Through the gateway (the default,
:func:`gateway_route`) that is ``{gateway}/{piece}{path}``, the gateway stripping its prefix;
tests that talk to ``auth`` and a service on their own ports pass their own route.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vigie.contract.levels import Level
from vigie.contract.service import ReplayRequest

Route = Callable[[str, str], str]  # (piece, path) -> absolute URL
OnResult = Callable[["ReplayRequest", "Outcome", "dict[str, Any] | None"], None]

CREDENTIALS_FILE = "replay-client.json"  # in the keys dir (var/keys), by the fleet launcher
RETRY_STATUSES = frozenset({429, 502, 503, 504})
NETWORK = "network"  # the errors_by_status key of batches that never got an HTTP answer
MAX_REPORTED_ERRORS = 20
USER_AGENT = "vigie-replay/1"
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class ReplayError(Exception):
    """The replay cannot start or go on (no credentials, token refused...); the message says why."""


def gateway_route(base_url: str) -> Route:
    """Routes through the gateway: ``auth`` at ``/auth/token``, a service at ``/<service>/...``."""
    base = base_url.rstrip("/")
    return lambda piece, path: f"{base}/{piece}{path}"


# ------------------------------------------------------------------------------- credentials


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


# ------------------------------------------------------------------------------------ retries


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_retries`` retries per request; the n-th waits ``Retry-After`` when the
    answer gave one (capped), else a random time in ``[d/2, d]``, ``d = backoff_s * 2**n``
    capped at ``max_backoff_s``."""

    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 300.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**retry)
        return random.uniform(ceiling / 2, ceiling)


def retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _certificate_refused(exc: BaseException) -> bool:
    """A TLS verification failure: permanent, not worth retrying (the chain holds the cause)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retryable(response: httpx.Response) -> bool:
    """Worth sending again: overload, gateway trouble, or the same key still in progress."""
    if response.status_code in RETRY_STATUSES:
        return True
    return response.status_code == 409 and "retry-after" in response.headers


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


# ------------------------------------------------------------------------------------- tokens


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
            except _TRANSIENT as exc:
                if last or _certificate_refused(exc):
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


# ------------------------------------------------------------------------------------- sending


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
    """Posts batches to one service's ``/v1/predict`` (see the module docstring for retries)."""

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
            except _TRANSIENT as exc:
                if retries >= self._policy.max_retries or _certificate_refused(exc):
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


class Pacer:
    """Holds a replay to ``rate`` rows per second (see the module docstring); 0 = no pacing."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._start: float | None = None

    def wait(self, rows_sent: int) -> None:
        """Wait until the next batch is due, ``rows_sent`` rows after the start."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        if self._start is None:
            self._start = now
        delay = self._start + rows_sent / self.rate - now
        if delay > 0:
            time.sleep(delay)


# ------------------------------------------------------------------------------------ summary


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Summary:
    """What a replay did. ``rows`` counts the new rows of every request sent; ``levels`` counts
    the predictions received per level."""

    service: str
    rows: int = 0
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    idempotent_replays: int = 0
    token_fetches: int = 0
    predictions: int = 0
    levels: dict[str, int] = field(default_factory=lambda: {lv.value: 0 for lv in Level})
    errors_by_status: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_REPORTED_ERRORS
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    aborted: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.aborted is None

    def record(self, request: ReplayRequest, outcome: Outcome) -> dict[str, Any] | None:
        """Count one batch; returns its error report when it failed."""
        self.requests += 1
        self.rows += request.rows
        self.retries += outcome.retries
        self.idempotent_replays += outcome.replayed
        if outcome.latency_s is not None:
            self.latencies_s.append(outcome.latency_s)
        if outcome.ok:
            self.succeeded += 1
            for item in (outcome.body or {}).get("predictions", []):
                self.predictions += 1
                level = str(item.get("level"))
                self.levels[level] = self.levels.get(level, 0) + 1
            return None
        self.failed += 1
        status = NETWORK if outcome.status is None else str(outcome.status)
        self.errors_by_status[status] = self.errors_by_status.get(status, 0) + 1
        error = outcome.error or ErrorInfo("unknown", "", [])
        first = request.measurements[len(request.measurements) - request.rows]
        report = {
            "request": self.requests,
            "asset_id": request.asset_id,
            "first_timestamp": first.get("timestamp"),
            "status": status,
            "code": error.code,
            "message": error.message,
            "details": error.details,
        }
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(report)
        return report

    def as_dict(self) -> dict[str, Any]:
        def ms(q: float) -> float | None:
            value = percentile(self.latencies_s, q)
            return None if value is None else round(value * 1000, 1)

        return {
            "service": self.service,
            "ok": self.ok,
            "rows": self.rows,
            "requests": self.requests,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retries": self.retries,
            "idempotent_replays": self.idempotent_replays,
            "token_fetches": self.token_fetches,
            "predictions": self.predictions,
            "levels": self.levels,
            "errors_by_status": self.errors_by_status,
            "latency_ms": {"p50": ms(50), "p99": ms(99)},
            "elapsed_s": round(self.elapsed_s, 3),
            "rows_per_s": round(self.rows / self.elapsed_s, 2) if self.elapsed_s > 0 else None,
            "errors": self.errors,
            "aborted": self.aborted,
        }


# ---------------------------------------------------------------------------------- the replay


def limited(requests: Iterable[ReplayRequest], limit: int | None) -> Iterator[ReplayRequest]:
    """The requests up to ``limit`` new rows in all (the last one cut short); all when None."""
    left = limit
    for request in requests:
        if left is not None and left <= 0:
            return
        cut = request if left is None else request.first(left)
        if left is not None:
            left -= cut.rows
        yield cut


def scope_for(service: str) -> str:
    return f"predict:{service} feedback:{service}"


def replay(
    service: str,
    requests: Iterable[ReplayRequest],
    *,
    route: Route,
    credentials: Credentials,
    verify: ssl.SSLContext | bool = True,
    rate: float = 0.0,
    timeout_s: float = 30.0,
    policy: RetryPolicy | None = None,
    on_result: OnResult | None = None,
) -> Summary:
    """Send ``requests`` to ``service`` over one keep-alive connection pool, paced to ``rate``
    rows per second; ``on_result(request, outcome, error_report)`` after each batch."""
    policy = policy or RetryPolicy()
    summary = Summary(service)
    pacer = Pacer(rate)
    started = time.monotonic()
    with httpx.Client(verify=verify, timeout=timeout_s, headers={"User-Agent": USER_AGENT}) as http:
        tokens = TokenSource(http, route("auth", "/token"), credentials, scope_for(service), policy)
        sender = Sender(http, route(service, "/v1/predict"), tokens, policy)
        try:
            for request in requests:
                pacer.wait(summary.rows)
                outcome = sender.send(request)
                report = summary.record(request, outcome)
                if on_result is not None:
                    on_result(request, outcome, report)
        except ReplayError as exc:
            summary.aborted = str(exc)
        summary.token_fetches = tokens.fetches
    summary.elapsed_s = time.monotonic() - started
    return summary


# ------------------------------------------------------------------------------------- output


def describe_error(report: dict[str, Any]) -> str:
    """One line for a failed batch: where, status, code, message and the fields named."""
    named = [f"{d['field']}: {d.get('message')}" for d in report["details"]
             if isinstance(d, dict) and "field" in d]  # fmt: skip
    fields = [f for f in named if f not in report["message"]]  # the message names the first
    more = f" (+{len(fields) - 3} more)" if len(fields) > 3 else ""
    where = f"request {report['request']} ({report['asset_id']} from {report['first_timestamp']})"
    line = f"{where}: {report['status']} {report['code']}: {report['message']}"
    return line + (f" [{'; '.join(fields[:3])}{more}]" if fields else "")


@contextmanager
def progress(console: Console, total_rows: int) -> Iterator[OnResult]:
    """An :data:`OnResult` that shows a progress bar on a terminal and prints failed batches
    (the first ``MAX_REPORTED_ERRORS``; later ones are only counted)."""
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("rows  {task.fields[failed]} failed"), TimeElapsedColumn(),
        console=console, disable=not console.is_terminal,
    )  # fmt: skip
    task = bar.add_task("replay", total=total_rows, failed=0)
    failed = 0

    def on_result(request: ReplayRequest, _outcome: Outcome, report: dict[str, Any] | None) -> None:
        nonlocal failed
        if report is not None:
            failed += 1
            if failed <= MAX_REPORTED_ERRORS:
                console.print(describe_error(report), style="red", highlight=False, markup=False)
            elif failed == MAX_REPORTED_ERRORS + 1:
                console.print("further failed batches are counted, not printed", style="red")
        bar.update(task, advance=request.rows, failed=failed)

    with bar:
        yield on_result


def format_summary(summary: Summary) -> str:
    """The summary for people (``--json`` prints :meth:`Summary.as_dict` instead)."""
    d = summary.as_dict()
    rate = f", {d['rows_per_s']} rows/s" if d["rows_per_s"] else ""
    errors = ", ".join(f"{status} x{n}" for status, n in sorted(d["errors_by_status"].items()))
    levels = ", ".join(f"{level} {n}" for level, n in d["levels"].items())
    latency = d["latency_ms"]
    lines = [
        f"{d['service']}: {d['rows']} rows in {d['requests']} requests, {d['elapsed_s']} s{rate}",
        f"  succeeded {d['succeeded']}, failed {d['failed']}, retries {d['retries']}, "
        f"idempotent replays {d['idempotent_replays']}, tokens fetched {d['token_fetches']}",
        f"  errors by status: {errors or 'none'}",
        f"  predictions {d['predictions']}: {levels}",
        f"  latency p50 {latency['p50']} ms, p99 {latency['p99']} ms",
    ]
    if summary.aborted:
        lines.append(f"  aborted: {summary.aborted}")
    return "\n".join(lines)
