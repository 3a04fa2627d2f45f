"""The auth service over real HTTP (uvicorn on a free loopback port), as verifiers use it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from vigie.auth.keys import init_keys
from vigie.auth.verify import Authenticator, KeySet, TokenVerifier
from vigie.contract.errors import Unauthorized
from vigie.settings import VigieSettings
from vigie_services.auth.app import create_app
from vigie_services.auth.clients import ClientStore

SCOPE = "predict:turbine-nox"


@pytest.fixture
def auth_url(settings: VigieSettings, keys: str) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


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
