"""The auth service over real HTTP (uvicorn on a free loopback port), as verifiers use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services.alerting.openapi_contract import Contract
from tests.support.servers import uvicorn_thread
from vigie.auth.authenticator import Authenticator
from vigie.auth.keys import init_keys
from vigie.auth.keyset import KeySet
from vigie.auth.verify import TokenVerifier
from vigie.contract.errors import Unauthorized
from vigie.settings import VigieSettings
from vigie_services.auth.app import create_app
from vigie_services.auth.clients import ClientStore

SCOPE = "predict:turbine-nox"


@pytest.fixture
def auth_url(settings: VigieSettings, keys: str) -> Iterator[str]:
    """The auth app under uvicorn on a free loopback port: its base URL."""
    with uvicorn_thread(create_app(settings)) as url:
        yield url


def get_token(url: str, client_id: str, secret: str) -> str:
    response = httpx.post(
        f"{url}/token",
        data={"grant_type": "client_credentials", "scope": SCOPE},
        auth=(client_id, secret),  # HTTP Basic, as most OAuth2 clients do
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_issued_token_verifies_with_the_served_jwks(
    auth_url: str, store: ClientStore, settings: VigieSettings
) -> None:
    secret = store.add_client("plant-9", [SCOPE, "feedback:turbine-nox"])
    token = get_token(auth_url, "plant-9", secret)

    jwks_url = f"{auth_url}/.well-known/jwks.json"
    auth = Authenticator.from_settings(VigieSettings(jwks_url=jwks_url))
    principal = auth.verifier.verify(token)
    assert principal.sub == "plant-9"
    assert principal.scopes == {SCOPE}


def test_rotation_is_picked_up_by_a_running_verifier(
    auth_url: str, store: ClientStore, settings: VigieSettings
) -> None:
    secret = store.add_client("plant-9", [SCOPE])
    jwks_url = f"{auth_url}/.well-known/jwks.json"
    verifier = TokenVerifier(KeySet.from_url(jwks_url, min_refresh_interval_s=0))
    before = get_token(auth_url, "plant-9", secret)
    assert verifier.verify(before).sub == "plant-9"

    new_kid = init_keys(settings.resolved_keys_dir, force=True)  # auth keeps running
    after = get_token(auth_url, "plant-9", secret)
    assert new_kid not in verifier.keyset.kids
    assert verifier.verify(after).sub == "plant-9"  # refetched on the unknown kid
    assert new_kid in verifier.keyset.kids
    verifier.clear_cache()
    assert verifier.verify(before).sub == "plant-9"  # previous key still published


def test_wrong_secret_over_http(auth_url: str, store: ClientStore) -> None:
    store.add_client("plant-9", [SCOPE])
    response = httpx.post(
        f"{auth_url}/token",
        data={"grant_type": "client_credentials"},
        auth=("plant-9", "wrong"),
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_client"


def test_token_of_another_issuer_is_refused(
    auth_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.support.tokens import TokenForge

    stranger = TokenForge(tmp_path_factory.mktemp("stranger"))
    verifier = TokenVerifier(KeySet.from_url(f"{auth_url}/.well-known/jwks.json"))
    with pytest.raises(Unauthorized, match="unknown signing key id"):
        verifier.verify(stranger.token([SCOPE]))


# -- the published contract, on SQLite and PostgreSQL -----------------------------------------


@pytest.fixture
def db_settings(tmp_path: Path, database_url: str) -> VigieSettings:
    return VigieSettings(
        var_dir=tmp_path, keys_dir=tmp_path / "keys", database_url=database_url,
        jwt_public_keys=None,
    )  # fmt: skip


@pytest.fixture
def db_store(db_settings: VigieSettings) -> Iterator[ClientStore]:
    init_keys(db_settings.resolved_keys_dir)
    store = ClientStore.from_settings(db_settings)
    store.create_schema()
    yield store
    store.close()


def test_every_answer_matches_the_openapi_document(
    db_settings: VigieSettings, db_store: ClientStore
) -> None:
    secret = db_store.add_client("plant-9", [SCOPE, "feedback:turbine-nox"])
    with uvicorn_thread(create_app(db_settings)) as url:
        contract = Contract.of(url)
        with httpx.Client(base_url=url, timeout=10, event_hooks=contract.hooks()) as c:
            ok = {"grant_type": "client_credentials"}
            assert c.get("/healthz").json() == {"status": "ok"}
            assert c.get("/readyz").json()["status"] == "ok"
            jwks = c.get("/.well-known/jwks.json")
            assert jwks.headers["Cache-Control"] == "public, max-age=300"
            token = c.post("/token", data=ok | {"client_id": "plant-9", "client_secret": secret})
            assert token.headers["Cache-Control"] == "no-store"
            assert token.json()["scope"] == f"feedback:turbine-nox {SCOPE}"
            assert c.post("/token", data=ok, auth=("plant-9", secret)).status_code == 200

            def error(status: int, code: str, **kw: Any) -> None:
                r = c.post("/token", **kw)
                assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text

            error(400, "invalid_request", data={})
            error(400, "invalid_request", content=b"grant_type=client_credentials&grant_type=x",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            error(400, "invalid_request", content=b"x",
                  headers={"Content-Type": "multipart/form-data"})  # no boundary  # fmt: skip
            error(400, "invalid_request", data=ok, files={"client_id": ("id", b"plant-9")})
            error(400, "invalid_request", auth=("plant-9", secret),
                  data=ok | {"client_id": "plant-9", "client_secret": secret})  # fmt: skip
            error(400, "unsupported_grant_type", data={"grant_type": "password"})
            error(
                400, "invalid_scope", auth=("plant-9", secret), data=ok | {"scope": "models:admin"}
            )
            error(401, "invalid_client", auth=("plant-9", "wrong"), data=ok)
            # An id no client can have (PostgreSQL refuses NUL in text): not a database error.
            error(401, "invalid_client", data=ok | {"client_id": "a\x00b", "client_secret": "x"})
            error(401, "invalid_client", auth=("a\x00b", "x"), data=ok)

            # Without a signing key: 503 in the envelope, everywhere it is needed.
            for key_file in db_settings.resolved_keys_dir.iterdir():
                key_file.unlink()
            assert c.get("/readyz").status_code == 503
            assert c.get("/.well-known/jwks.json").status_code == 503
            error(503, "service_unavailable", auth=("plant-9", secret), data=ok)
    assert contract.unexercised_successes() == []
