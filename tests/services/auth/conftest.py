from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vigie.auth.keys import init_keys
from vigie.settings import VigieSettings
from vigie_services.auth.app import create_app
from vigie_services.auth.clients import ClientStore


@pytest.fixture
def settings(tmp_path: Path) -> VigieSettings:
    """Everything under tmp_path: keys, SQLite client registry (whatever the environment says)."""
    return VigieSettings(
        var_dir=tmp_path, keys_dir=tmp_path / "keys", database_url=None, jwt_public_keys=None
    )


@pytest.fixture
def keys(settings: VigieSettings) -> str:
    return init_keys(settings.resolved_keys_dir)


@pytest.fixture
def store(settings: VigieSettings) -> Iterator[ClientStore]:
    store = ClientStore.from_settings(settings)
    store.create_schema()
    yield store
    store.close()


@pytest.fixture
def client(settings: VigieSettings, keys: str, store: ClientStore) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
