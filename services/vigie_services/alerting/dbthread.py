"""One thread for every database call of the alerting process.

The consumer, the delivery worker, the publisher, housekeeping and the API all reach the database
through it. Their transactions are short, and running them one after the other on one thread is
both faster and steadier than letting many threads contend: SQLite allows one writer at a time and
its busy handler backs off by sleeping, which under contention turns milliseconds into seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

T = TypeVar("T")


def relaxed_commit(session: Session) -> None:
    """Let this PostgreSQL transaction commit without waiting for its WAL flush.

    Only for bookkeeping whose loss in a *database* crash is harmless: a delivery marked
    ``sending`` goes out again, an alert event marked published is published again (both carry
    their id). Level events and delivery outcomes always commit durably."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


class DatabaseThread:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerting-db")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
