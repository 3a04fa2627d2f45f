"""The fleet bench's report: one JSON document (kept under ``var/bench/`` to compare runs) and
one rich table on the terminal, with the issue's targets checked (reported, never tuned to).

JSON shape (``schema`` 1)::

    {"schema": 1, "meta": {...how, where, when...}, "targets": {...},
     "services": [{"service", "skipped", "model_version", "estimators", "tree_ensemble",
                   "bodies": {"1": {...}, "100": {...}}, "cells": [cell, ...], "soak": cell|null,
                   "baseline": cell|null, "ratio_c8": float|null,
                   "in_process": {"predict_ms": {"1", "1000"}, "raw_model_ms": {"1", "1000"}},
                   "rss_mb": {"idle": [...], "after": [...], "pss_after": [...]}}],
     "checks": [{"service", "target", "value", "ok"}]}

A cell: ``rows``, ``concurrency``, ``label``, ``requests``, ``duration_s``, ``rps``,
``rows_per_s``, ``p50_ms``, ``p90_ms``, ``p99_ms``, ``max_ms``, ``errors`` (total),
``error_detail`` (wrk's connect/read/write/status/timeout), ``cpu_pct`` per process group.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table

SCHEMA = 1
TARGETS: dict[str, Any] = {
    "ratio_c8_min": 10.0,  # Vigie 1-row req/s at c8 / baseline's, tree-ensemble services
    "p99_c8_ms_max": 5.0,  # 1-row requests at c8 through the gateway
    "rows_per_s_100_min": 100_000.0,  # 100-row requests, best concurrency
    "soak_s": 60,  # no errors at the highest concurrency for this long
    "rss_mb_max": 200.0,  # per worker
}
RATIO_CONCURRENCY = 8


def report_path(out_dir: Path, started: datetime) -> Path:
    return out_dir / f"bench-{started:%Y%m%dT%H%M%SZ}.json"


def build_report(meta: dict[str, Any], services: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "meta": meta,
        "targets": TARGETS,
        "services": services,
        "checks": checks(services),
    }


def write_report(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def _cell(cells: list[dict[str, Any]], rows: int, concurrency: int) -> dict[str, Any] | None:
    return next((c for c in cells if c["rows"] == rows and c["concurrency"] == concurrency), None)


def checks(services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target the run could check, per service: the value and whether it is met."""
    out: list[dict[str, Any]] = []

    def add(service: str, target: str, value: Any, ok: bool) -> None:
        out.append({"service": service, "target": target, "value": value, "ok": ok})

    for s in services:
        if s.get("skipped"):
            continue
        name, cells = s["service"], s.get("cells", [])
        c8 = _cell(cells, 1, RATIO_CONCURRENCY)
        if s.get("ratio_c8") is not None and s.get("tree_ensemble"):
            ratio = s["ratio_c8"]
            add(
                name,
                "1-row req/s at c8 >= 10x baseline",
                round(ratio, 2),
                ratio >= TARGETS["ratio_c8_min"],
            )
        if c8 is not None:
            add(
                name,
                "1-row p99 at c8 < 5 ms",
                round(c8["p99_ms"], 2),
                c8["p99_ms"] < TARGETS["p99_c8_ms_max"] and c8["errors"] == 0,
            )
        hundred = [c for c in cells if c["rows"] == 100]
        if hundred:
            best = max(c["rows_per_s"] for c in hundred)
            add(
                name,
                "100-row requests >= 100,000 rows/s",
                round(best),
                best >= TARGETS["rows_per_s_100_min"],
            )
        soak = s.get("soak")
        if soak is not None:
            long_enough = soak["duration_s"] >= TARGETS["soak_s"] * 0.95
            add(
                name,
                f"no errors at c{soak['concurrency']} for {TARGETS['soak_s']} s",
                {"errors": soak["errors"], "seconds": round(soak["duration_s"], 1)},
                soak["errors"] == 0 and long_enough,
            )
        rss = s.get("rss_mb", {}).get("after") or []
        if rss:
            add(name, "RSS per worker < 200 MB", max(rss), max(rss) < TARGETS["rss_mb_max"])
    return out


# ------------------------------------------------------------------------------------ table


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _mark(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]MISS[/red]"


def _cpu(cell: dict[str, Any], groups: tuple[str, ...]) -> str:
    cpu = cell.get("cpu_pct") or {}
    return "·".join("-" if cpu.get(g) is None else f"{cpu[g]:.0f}" for g in groups)


def _cell_row(name: str, label: str, cell: dict[str, Any], check: str) -> list[str]:
    groups = ("service", "gateway", "wrk", "other")
    errors = cell["errors"]
    return [
        name,
        label,
        str(cell["concurrency"]),
        _num(cell["rps"]),
        _num(cell["rows_per_s"]),
        _ms(cell["p50_ms"]),
        _ms(cell["p99_ms"]),
        f"[red]{errors}[/red]" if errors else "0",
        _cpu(cell, groups),
        check,
    ]


def _raw_note(raw: float | None, sklearn: float | None) -> str:
    """The model calls' own time: as served, and scikit-learn's when parts are compiled."""
    if raw is None:
        return ""
    if sklearn is None:
        return f"raw model {_ms(raw)} ms"
    return f"raw model {_ms(raw)} ms (onnx), sklearn {_ms(sklearn)} ms"


def render_table(report: dict[str, Any]) -> Table:
    meta = report.get("meta", {})
    title = (
        f"Vigie fleet bench {meta.get('started_at', '')} - {meta.get('transport', '?')} via the "
        f"gateway, service access log {meta.get('access_log', '?')}, "
        f"{meta.get('duration_s', '?')} s per cell"
    )
    table = Table(title=title, caption=meta.get("caption"), show_lines=False)
    for header, justify in [
        ("service", "left"),
        ("request", "left"),
        ("c", "right"),
        ("req/s", "right"),
        ("rows/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("err", "right"),
        ("cpu% svc·gw·wrk·other", "right"),
        ("target / note", "left"),
    ]:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for s in report.get("services", []):
        name = s["service"]
        if s.get("skipped"):
            table.add_row(name, f"[yellow]skipped: {s['skipped']}[/yellow]", *[""] * 8)
            table.add_section()
            continue
        for cell in s.get("cells", []):
            check = ""
            if cell["rows"] == 1 and cell["concurrency"] == RATIO_CONCURRENCY:
                check = f"p99<5ms {_mark(cell['p99_ms'] < TARGETS['p99_c8_ms_max'])}"
            elif cell["rows"] == 100:
                ok = cell["rows_per_s"] >= TARGETS["rows_per_s_100_min"]
                check = f">=100k rows/s {_mark(ok)}"
            table.add_row(*_cell_row(name, cell["label"], cell, check))
            name = ""
        soak = s.get("soak")
        if soak is not None:
            ok = soak["errors"] == 0 and soak["duration_s"] >= TARGETS["soak_s"] * 0.95
            label = f"{soak['label']}, soak {soak['duration_s']:.0f} s"
            table.add_row(*_cell_row(name, label, soak, f"no errors 60 s {_mark(ok)}"))
        base = s.get("baseline")
        if base is not None:
            note = "" if base.get("row_source") == "service features" else "row of zeros"
            table.add_row(*_cell_row("", "baseline (plain FastAPI)", base, note))
            ratio = s.get("ratio_c8")
            if ratio is not None:
                check = (
                    f">=10x {_mark(ratio >= TARGETS['ratio_c8_min'])}"
                    if s.get("tree_ensemble")
                    else "(not a tree ensemble)"
                )
                table.add_row(
                    "",
                    "Vigie / baseline",
                    str(RATIO_CONCURRENCY),
                    f"{ratio:.2f}x",
                    "",
                    "",
                    "",
                    "",
                    "",
                    check,
                )
        ip = s.get("in_process") or {}
        for rows, predict_ms in sorted(
            (ip.get("predict_ms") or {}).items(), key=lambda x: int(x[0])
        ):
            raw = (ip.get("raw_model_ms") or {}).get(rows)
            sklearn = (ip.get("raw_sklearn_ms") or {}).get(rows)
            per_s = 1000 / predict_ms if predict_ms else None
            table.add_row(
                "",
                f"in-process, {rows} row{'s' if int(rows) > 1 else ''}",
                "1",
                _num(per_s),
                _num(per_s * int(rows) if per_s else None),
                _ms(predict_ms),
                "",
                "",
                "",
                _raw_note(raw, sklearn),
            )
        rss = s.get("rss_mb") or {}
        if rss.get("after"):
            after = ", ".join(f"{v:.0f}" for v in rss["after"])
            idle = ", ".join(f"{v:.0f}" for v in rss.get("idle") or [])
            ok = max(rss["after"]) < TARGETS["rss_mb_max"]
            table.add_row(
                "",
                "RSS/worker MB",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                f"{after} (idle {idle}) <200 {_mark(ok)}",
            )
        table.add_section()
    return table
