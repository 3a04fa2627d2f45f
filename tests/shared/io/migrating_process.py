"""What each process of the concurrent-upgrade tests runs: spawned, so a fresh interpreter that
imports only this (and the runner), not the test module."""

from __future__ import annotations

import multiprocessing
from typing import Any

from vigie.io.db import upgrade
from vigie.ops.registry import resolve


def upgrade_in_process(url: str, migrations_spec: str, start: Any, results: Any) -> None:
    """Wait for every process at ``start`` (a Barrier), upgrade, put the outcome on ``results``:
    ``("ok", before, after, stamped)`` or ``("error", repr, None, None)``."""
    migrations = resolve(migrations_spec)
    start.wait(timeout=120)
    try:
        r = upgrade(url, migrations)
        results.put(("ok", r.before, r.after, r.stamped))
    except Exception as exc:  # reported to the test, which asserts there was none
        results.put(("error", repr(exc), None, None))


def upgrade_at_once(url: str, migrations_spec: str, n: int = 2) -> list[tuple[Any, ...]]:
    """Upgrade ``url`` from ``n`` processes started together; their outcomes."""
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=upgrade_in_process, args=(url, migrations_spec, start, results))
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    try:
        return [results.get(timeout=180) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
