"""The replay itself: requests paced to a rate, sent over one keep-alive pool, summed up.

:func:`replay` sends a service's :class:`~vigie.contract.replay.ReplayRequest` batches with a
:class:`~vigie.client.replay.session.Sender` and counts them in a
:class:`~vigie.client.replay.report.Summary`; :func:`limited` cuts the requests to a number of
rows; :class:`Pacer` holds the rate.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator

import httpx

from vigie.client.replay.policy import RetryPolicy, Route
from vigie.client.replay.report import OnResult, Summary
from vigie.client.replay.session import USER_AGENT, Credentials, ReplayError, Sender, TokenSource
from vigie.contract.replay import ReplayRequest


class Pacer:
    """Holds a replay to ``rate`` rows per second (:mod:`vigie.client.replay`); 0 = no pacing."""

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
