"""What a replay did (:class:`Summary`) and how it is shown: a progress bar, failed batches, totals.

``--json`` prints :meth:`Summary.as_dict`; people get :func:`progress` while it runs and
:func:`format_summary` at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vigie.client.replay.session import NETWORK, ErrorInfo, Outcome
from vigie.contract.levels import Level
from vigie.contract.replay import ReplayRequest

OnResult = Callable[["ReplayRequest", "Outcome", "dict[str, Any] | None"], None]

MAX_REPORTED_ERRORS = 20


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
