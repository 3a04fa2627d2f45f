"""Fixtures shared by every test: real servers on loopback, and the data directory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from tests.support.servers import RedisServer

REPO_ROOT = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    """The real data directory (VIGIE_DATA_DIR, else ../shared/data next to the repo)."""
    env = os.environ.get("VIGIE_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh redis-server on a free port, stopped after the test."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


POSTGRES_MISSING = (
    "PostgreSQL not available: set VIGIE_TEST_POSTGRES_URL or run scripts/test-postgres as root"
)


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test, on SQLite and on a real PostgreSQL.

    sqlite: a file in tmp_path. postgresql: ``CREATE DATABASE vigie_test_<random>`` on the server
    of ``VIGIE_TEST_POSTGRES_URL`` (a role with CREATEDB; ``make test`` sets it from
    ``scripts/test-postgres``), dropped afterwards. Without that URL the case skips, except under
    CI, where skipping PostgreSQL would hide that it is not tested: there it fails.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    server = os.environ.get("VIGIE_TEST_POSTGRES_URL", "").strip()
    if not server:
        if _under_ci():
            pytest.fail(f"{POSTGRES_MISSING} (CI is set: PostgreSQL cases must run)", pytrace=False)
        pytest.skip(POSTGRES_MISSING)
    name = f"vigie_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """When a test that talks to a served process fails, attach what that process said and
    whether it still runs: a CI log must be enough to tell a crash from a wrong answer."""
    report = yield
    if report.failed and call.when in ("call", "setup"):
        for name, value in getattr(item, "funcargs", {}).items():
            process = getattr(value, "service", None) or getattr(value, "proc", None)
            proc = getattr(process, "proc", process)
            log = getattr(process, "log", None) or getattr(value, "log", None)
            if proc is None or not callable(log):
                continue
            state = "running" if proc.poll() is None else f"exited with {proc.returncode}"
            tail = "\n".join(str(log()).splitlines()[-60:])
            report.sections.append((f"{name}: process {proc.pid} {state}", tail))
    return report
