"""Fixtures shared by every test: real servers on loopback, and the data directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
