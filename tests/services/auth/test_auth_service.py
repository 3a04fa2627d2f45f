from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jose import jwt

from vigie.auth.keyset import KeySet
from vigie.auth.verify import TokenVerifier
from vigie.settings import VigieSettings
from vigie_services.auth.app import create_app
from vigie_services.auth.clients import ClientStore

SCOPES = ["predict:transformer-temperature", "feedback:transformer-temperature"]


def form(client_id: str, secret: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            **extra}  # fmt: skip


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def verifier_from_served_jwks(client: TestClient) -> TokenVerifier:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return TokenVerifier(KeySet.from_jwks(response.json()))


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return dict(body["error"])


# ----------------------------------------------------------------------- token issuance


def test_token_end_to_end(
    client: TestClient, store: ClientStore, settings: VigieSettings, keys: str
) -> None:
    secret = store.add_client("scada-1", SCOPES)
    response = client.post("/token", data=form("scada-1", secret))
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.token_ttl_s
    assert body["scope"].split() == sorted(SCOPES)

    principal = verifier_from_served_jwks(client).verify(body["access_token"])
    assert principal.sub == "scada-1"
    assert principal.scopes == set(SCOPES)
    assert principal.expires_at - principal.claims["iat"] == settings.token_ttl_s
    assert jwt.get_unverified_header(body["access_token"])["kid"] == keys


def test_requested_subset_of_scopes(client: TestClient, store: ClientStore) -> None:
    secret = store.add_client("reader", SCOPES)
    response = client.post("/token", data=form("reader", secret, scope=SCOPES[0]))
    assert response.status_code == 200
    assert response.json()["scope"] == SCOPES[0]
    principal = verifier_from_served_jwks(client).verify(response.json()["access_token"])
    assert principal.scopes == {SCOPES[0]}


def test_basic_auth(client: TestClient, store: ClientStore) -> None:
    secret = store.add_client("basic-client", SCOPES)
    response = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic("basic-client", secret)
    )
    assert response.status_code == 200, response.text
    assert verifier_from_served_jwks(client).verify(response.json()["access_token"]).sub == (
        "basic-client"
    )


def test_wrong_secret_is_401_invalid_client(client: TestClient, store: ClientStore) -> None:
    store.add_client("scada-1", SCOPES)
    response = client.post("/token", data=form("scada-1", "not-the-secret"))
    error_of(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    response = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic("scada-1", "nope")
    )
    error_of(response, 401, "invalid_client")


def test_unknown_client_is_401_with_the_same_message(
    client: TestClient, store: ClientStore
) -> None:
    store.add_client("scada-1", SCOPES)
    unknown = error_of(client.post("/token", data=form("ghost", "x")), 401, "invalid_client")
    wrong = error_of(client.post("/token", data=form("scada-1", "x")), 401, "invalid_client")
    assert unknown["message"] == wrong["message"]  # no client enumeration


def test_removed_client_cannot_get_tokens(client: TestClient, store: ClientStore) -> None:
    secret = store.add_client("gone", SCOPES)
    assert store.remove_client("gone")
    error_of(client.post("/token", data=form("gone", secret)), 401, "invalid_client")


@pytest.mark.parametrize(
    "data",
    [
        {"grant_type": "client_credentials"},
        {"grant_type": "client_credentials", "client_id": "scada-1"},
    ],
)
def test_missing_client_authentication_is_401(client: TestClient, data: dict[str, str]) -> None:
    error_of(client.post("/token", data=data), 401, "invalid_client")


def test_malformed_basic_is_401(client: TestClient) -> None:
    headers = {"Authorization": "Basic !!!notbase64"}
    response = client.post("/token", data={"grant_type": "client_credentials"}, headers=headers)
    error_of(response, 401, "invalid_client")


def test_two_authentication_methods_is_400(client: TestClient, store: ClientStore) -> None:
    secret = store.add_client("scada-1", SCOPES)
    response = client.post("/token", data=form("scada-1", secret), headers=basic("scada-1", secret))
    error_of(response, 400, "invalid_request")


def test_scope_escalation_is_400_invalid_scope(client: TestClient, store: ClientStore) -> None:
    secret = store.add_client("scada-1", SCOPES)
    response = client.post(
        "/token", data=form("scada-1", secret, scope=f"{SCOPES[0]} models:admin")
    )
    error = error_of(response, 400, "invalid_scope")
    assert "models:admin" in error["message"]


@pytest.mark.parametrize("grant", ["password", "authorization_code", "refresh_token"])
def test_wrong_grant_is_400(client: TestClient, store: ClientStore, grant: str) -> None:
    secret = store.add_client("scada-1", SCOPES)
    data = form("scada-1", secret, grant_type=grant)
    error_of(client.post("/token", data=data), 400, "unsupported_grant_type")


def test_missing_grant_or_json_body_is_400(client: TestClient, store: ClientStore) -> None:
    secret = store.add_client("scada-1", SCOPES)
    error_of(client.post("/token", data={}), 400, "invalid_request")
    response = client.post("/token", json=form("scada-1", secret))
    error_of(response, 400, "invalid_request")


def test_token_without_keys_is_503(settings: VigieSettings, store: ClientStore) -> None:
    secret = store.add_client("scada-1", SCOPES)
    with TestClient(create_app(settings)) as client:
        error_of(client.post("/token", data=form("scada-1", secret)), 503, "service_unavailable")
        error_of(client.get("/.well-known/jwks.json"), 503, "service_unavailable")


def test_signing_key_rotation_without_restart(
    client: TestClient, store: ClientStore, settings: VigieSettings, keys: str
) -> None:
    from vigie.auth.keys import init_keys

    secret = store.add_client("scada-1", SCOPES)
    old = client.post("/token", data=form("scada-1", secret)).json()["access_token"]
    new_kid = init_keys(settings.resolved_keys_dir, force=True)
    new = client.post("/token", data=form("scada-1", secret)).json()["access_token"]
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    verifier = verifier_from_served_jwks(client)
    assert verifier.verify(old).sub == verifier.verify(new).sub == "scada-1"


# ------------------------------------------------------------------------ other routes


def test_jwks_is_public_and_cacheable(client: TestClient, keys: str) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.headers["Cache-Control"] == "public, max-age=300"
    (key,) = response.json()["keys"]
    assert key["kid"] == keys
    assert set(key) == {"kty", "kid", "use", "alg", "n", "e"}


def test_healthz_and_readyz(client: TestClient, keys: str) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["kid"] == keys


def test_readyz_503_without_signing_key(settings: VigieSettings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        error = error_of(client.get("/readyz"), 503, "service_unavailable")
        assert error["details"][0]["check"] == "signing_key"
        assert "vigie keys init" in error["details"][0]["message"]


def test_readyz_503_when_the_database_is_unusable(tmp_path: Path, keys: str) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database directory should be")
    settings = VigieSettings(
        var_dir=tmp_path, keys_dir=tmp_path / "keys",
        database_url=f"sqlite:///{blocker}/auth.db", jwt_public_keys=None,
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        error = error_of(client.get("/readyz"), 503, "service_unavailable")
        assert [d["check"] for d in error["details"]] == ["client_store"]


def test_metrics(client: TestClient, store: ClientStore) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "vigie_http_requests_total" in response.text


def test_unknown_route_is_enveloped(client: TestClient) -> None:
    error_of(client.get("/nope"), 404, "not_found")


# ----------------------------------------------------------------------- the registry


def test_secrets_are_not_stored_in_clear(store: ClientStore, settings: VigieSettings) -> None:
    secret = store.add_client("scada-1", SCOPES)
    db_path = settings.database_url_for("auth").removeprefix("sqlite:///")
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT * FROM auth_clients").fetchall()
        (row,) = conn.execute("SELECT client_id, secret_hash, scopes FROM auth_clients").fetchall()
    assert secret not in repr(rows)
    client_id, secret_hash, scopes = row
    assert client_id == "scada-1"
    assert secret_hash.startswith("scrypt$16384$8$1$")
    assert scopes.split() == SCOPES
    # A second client with the same... secret would still get a different hash (random salt).
    assert store.verify_client("scada-1", secret) == frozenset(SCOPES)
    assert store.verify_client("scada-1", secret + "x") is None


def test_registry_crud(store: ClientStore) -> None:
    from vigie_services.auth.clients import ClientError

    a = store.add_client("a", "alerts:read")
    b = store.add_client("b", ["alerts:read alerts:ack"])
    assert a != b
    assert [c.client_id for c in store.list_clients()] == ["a", "b"]
    assert store.list_clients()[1].scopes == ("alerts:read", "alerts:ack")
    with pytest.raises(ClientError, match="already exists"):
        store.add_client("a", "alerts:read")
    with pytest.raises(ClientError, match="invalid client id"):
        store.add_client("bad name", "alerts:read")
    with pytest.raises(ClientError, match="at least one scope"):
        store.add_client("c", "")
    assert store.remove_client("a")
    assert not store.remove_client("a")
    assert [c.client_id for c in store.list_clients()] == ["b"]


def test_store_creates_the_sqlite_directory(tmp_path: Path) -> None:
    store = ClientStore(f"sqlite:///{tmp_path}/deep/er/auth.db")
    store.create_schema()
    assert (tmp_path / "deep" / "er" / "auth.db").is_file()
    store.close()
