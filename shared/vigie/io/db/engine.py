"""The SQLAlchemy engine the services' databases are opened with (prediction log, alerting).

SQLite (one file per piece under ``var/`` by default) gets WAL, a busy timeout and
``synchronous=NORMAL``; PostgreSQL gets ``pool_pre_ping``. Both write JSON columns with orjson
(:func:`json_text`), which also writes the datetimes and enums that predictions carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import URL, Engine, create_engine, event, make_url

from vigie.io.sqlite import enable_wal

#: How long a SQLite connection waits for another writer before "database is locked".
SQLITE_TIMEOUT_S = 30.0


def json_text(value: Any) -> str:
    """``value`` as the JSON text stored in JSON columns (RFC 3339 UTC datetimes)."""
    return orjson.dumps(value, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS).decode()


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url``; for a SQLite file, its directory is created first."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_TIMEOUT_S}, json_serializer=json_text
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            enable_wal(dbapi_conn, SQLITE_TIMEOUT_S)
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=json_text)
