"""``vigie replay``: replay a CSV of real measurements through the gateway, as an integration would.

The service turns the CSV into predict requests (:meth:`vigie.contract.service.PredictionService.
replay_requests`); this package sends them the way a SCADA or historian client should:

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

Its modules: :mod:`~vigie.client.replay.policy` (routes and retry rules),
:mod:`~vigie.client.replay.session` (credentials, TLS, tokens, sending a batch),
:mod:`~vigie.client.replay.runner` (pacing and the replay loop) and
:mod:`~vigie.client.replay.report` (the summary, progress and output). Everything callers use is
importable from here (``from vigie.client import replay as rp``).
"""

from vigie.client.replay.policy import (
    RETRY_STATUSES,
    RetryPolicy,
    Route,
    gateway_route,
    retry_after_s,
    retryable,
)
from vigie.client.replay.report import (
    MAX_REPORTED_ERRORS,
    OnResult,
    Summary,
    describe_error,
    format_summary,
    percentile,
    progress,
)
from vigie.client.replay.runner import Pacer, limited, replay, scope_for
from vigie.client.replay.session import (
    CREDENTIALS_FILE,
    NETWORK,
    USER_AGENT,
    Credentials,
    ErrorInfo,
    Outcome,
    ReplayError,
    Sender,
    TokenSource,
    load_credentials,
    tls_verify,
)

__all__ = [
    "CREDENTIALS_FILE",
    "MAX_REPORTED_ERRORS",
    "NETWORK",
    "RETRY_STATUSES",
    "USER_AGENT",
    "Credentials",
    "ErrorInfo",
    "OnResult",
    "Outcome",
    "Pacer",
    "ReplayError",
    "RetryPolicy",
    "Route",
    "Sender",
    "Summary",
    "TokenSource",
    "describe_error",
    "format_summary",
    "gateway_route",
    "limited",
    "load_credentials",
    "percentile",
    "progress",
    "replay",
    "retry_after_s",
    "retryable",
    "scope_for",
    "tls_verify",
]
