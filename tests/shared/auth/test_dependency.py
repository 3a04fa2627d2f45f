from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from tests.support.tokens import (
    BAD_TOKEN_KINDS,
    EXPECTED_MESSAGES,
    MISSING_SCOPE,
    TokenForge,
    bearer,
)
from vigie.auth.authenticator import Authenticator
from vigie.auth.keyset import KeySet
from vigie.auth.verify import Principal, TokenVerifier
from vigie.contract.errors import ConfigError, install_error_handlers
from vigie.settings import VigieSettings

SCOPE = "predict:turbine-nox"


@pytest.fixture
def client(token_forge: TokenForge) -> Iterator[TestClient]:
    auth = Authenticator(TokenVerifier(KeySet.from_file(token_forge.jwks_path)))
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/protected")
    async def protected(principal: Principal = Depends(auth.requires(SCOPE))) -> dict[str, str]:
        return {"sub": principal.sub}

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"ok": "yes"}

    with TestClient(app) as test_client:
        yield test_client


def assert_envelope(body: dict[str, object], code: str) -> dict[str, object]:
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict)
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    return error


def test_good_token(client: TestClient, token_forge: TokenForge) -> None:
    response = client.get("/protected", headers=token_forge.headers([SCOPE], sub="plant-3"))
    assert response.status_code == 200
    assert response.json() == {"sub": "plant-3"}


def test_no_token_is_401_with_challenge(client: TestClient) -> None:
    response = client.get("/protected")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="vigie"')
    error = assert_envelope(response.json(), "unauthorized")
    assert error["message"] == "missing bearer token"
    assert client.get("/public").status_code == 200


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc"])
def test_malformed_authorization_header_is_401(client: TestClient, header: str) -> None:
    response = client.get("/protected", headers={"Authorization": header})
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    assert_envelope(response.json(), "unauthorized")


@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
def test_bad_tokens_are_401(client: TestClient, token_forge: TokenForge, kind: str) -> None:
    response = client.get("/protected", headers=bearer(token_forge.forge(kind, scopes=[SCOPE])))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    error = assert_envelope(response.json(), "unauthorized")
    assert EXPECTED_MESSAGES[kind] in str(error["message"])


def test_missing_scope_is_403(client: TestClient, token_forge: TokenForge) -> None:
    response = client.get("/protected", headers=bearer(token_forge.forge(MISSING_SCOPE)))
    assert response.status_code == 403
    assert f'scope="{SCOPE}"' in response.headers["WWW-Authenticate"]
    error = assert_envelope(response.json(), "insufficient_scope")
    assert error["details"] == [{"required_scope": SCOPE}]
    assert SCOPE in str(error["message"])


def test_scheme_is_case_insensitive(client: TestClient, token_forge: TokenForge) -> None:
    token = token_forge.token([SCOPE])
    response = client.get("/protected", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


def test_openapi_declares_bearer_security(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["paths"]["/protected"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/public"]["get"]


def test_from_settings_uses_the_jwks_file(token_forge: TokenForge) -> None:
    settings = VigieSettings(keys_dir=token_forge.keys_dir, jwks_url=None, jwt_public_keys=None)
    auth = Authenticator.from_settings(settings)
    assert auth.verifier.verify(token_forge.token()).sub == "test-client"
    assert auth.verifier.leeway_s == settings.jwt_leeway_s


def test_from_settings_fails_fast_without_keys(tmp_path: object) -> None:
    settings = VigieSettings(keys_dir=f"{tmp_path}/none", jwks_url=None, jwt_public_keys=None)
    with pytest.raises(ConfigError, match="vigie keys init"):
        Authenticator.from_settings(settings)
