from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.tokens import BAD_TOKEN_KINDS, EXPECTED_MESSAGES, TokenForge, b64url_json
from vigie.auth import verify as verify_module
from vigie.auth.keys import init_keys, issue_token, load_signing_key
from vigie.auth.keyset import KeySet
from vigie.auth.verify import Principal, TokenVerifier
from vigie.contract.errors import ConfigError, Unauthorized


def rejected(verifier: TokenVerifier, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        verifier.verify(token)
    return info.value


# ------------------------------------------------------------------------------ the rules


def test_valid_token_gives_principal(token_forge: TokenForge, verifier: TokenVerifier) -> None:
    token = token_forge.token(["predict:turbine-nox", "feedback:turbine-nox"], sub="plant-7")
    principal = verifier.verify(token)
    assert principal.sub == "plant-7"
    assert principal.scopes == {"predict:turbine-nox", "feedback:turbine-nox"}
    assert principal.has("predict:turbine-nox")
    assert not principal.has("models:admin")
    assert principal.claims["iss"] == "vigie"
    assert principal.expires_at > time.time()
    assert principal.token_id


@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
def test_bad_tokens_are_refused_with_a_precise_message(
    kind: str, token_forge: TokenForge, verifier: TokenVerifier
) -> None:
    err = rejected(verifier, token_forge.forge(kind, scopes=["predict:x"]))
    assert err.status == 401
    assert EXPECTED_MESSAGES[kind] in err.message
    assert err.headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
def test_bad_tokens_are_never_cached(
    kind: str, token_forge: TokenForge, verifier: TokenVerifier
) -> None:
    token = token_forge.forge(kind)
    for _ in range(2):
        rejected(verifier, token)
    assert verifier.cache_hits == 0


@pytest.mark.parametrize("kind", ["alg_none", "hs256_public_key"])
def test_algorithm_is_refused_before_any_key_is_used(
    kind: str, verifier: TokenVerifier, token_forge: TokenForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[str] = []
    real_get = verifier.keyset.get

    def spy(kid: str) -> Any:
        looked_up.append(kid)
        return real_get(kid)

    monkeypatch.setattr(verifier.keyset, "get", spy)
    rejected(verifier, token_forge.forge(kind))
    assert looked_up == []
    rejected(verifier, token_forge.forge("wrong_signature"))
    assert looked_up  # the spy works


@pytest.mark.parametrize("alg", ["HS512", "RS512", "ES256", "PS256", "none", "NONE", "rs256"])
def test_only_rs256_is_allowed(alg: str, token_forge: TokenForge, verifier: TokenVerifier) -> None:
    _header, payload, sig = token_forge.token().split(".")
    forged = f"{b64url_json({'alg': alg, 'kid': token_forge.kid})}.{payload}.{sig}"
    assert rejected(verifier, forged).message == f"algorithm {alg} not allowed"


def test_attacker_controlled_header_values_are_sanitized(
    token_forge: TokenForge, verifier: TokenVerifier
) -> None:
    token = token_forge.sign(token_forge.claims(), kid='evil"\r\nSet-Cookie: x=1')
    err = rejected(verifier, token)
    assert err.message.startswith("unknown signing key id evil?")
    assert '"\r' not in err.headers["WWW-Authenticate"]
    assert "\n" not in err.headers["WWW-Authenticate"]


def test_oversized_token_is_refused_before_parsing(verifier: TokenVerifier) -> None:
    assert rejected(verifier, "a." * 5000 + "b").message == "malformed token"


def test_empty_token(verifier: TokenVerifier) -> None:
    assert rejected(verifier, "").message == "missing bearer token"


@pytest.mark.parametrize("claim", ["iss", "aud", "nbf", "iat"])
def test_every_registered_claim_is_required(
    claim: str, token_forge: TokenForge, verifier: TokenVerifier
) -> None:
    claims = token_forge.claims()
    del claims[claim]
    token = token_forge.sign(claims)
    assert rejected(verifier, token).message == f"token missing claim {claim}"


def test_leeway_tolerates_small_clock_skew(token_forge: TokenForge) -> None:
    now = int(time.time())
    token = token_forge.sign(token_forge.claims(iat=now - 60, nbf=now - 60, exp=now - 3))
    keyset = KeySet.from_file(token_forge.jwks_path)
    assert TokenVerifier(keyset, leeway_s=10).verify(token).sub == "test-client"
    assert rejected(TokenVerifier(keyset, leeway_s=0), token).message == "token expired"
    early = token_forge.sign(token_forge.claims(nbf=now + 3))
    assert TokenVerifier(keyset, leeway_s=10).verify(early).sub == "test-client"
    assert rejected(TokenVerifier(keyset, leeway_s=0), early).message == "token not yet valid"


def test_custom_issuer_and_audience(token_forge: TokenForge) -> None:
    keyset = KeySet.from_file(token_forge.jwks_path)
    strict = TokenVerifier(keyset, issuer="vigie-prod", audience="vigie-prod")
    assert rejected(strict, token_forge.token()).message == "wrong audience"
    token = issue_token(
        token_forge.key, sub="a", scopes=[], ttl_s=60, issuer="vigie-prod", audience="vigie-prod"
    )
    assert strict.verify(token).sub == "a"


# ------------------------------------------------------------------------------ the cache


def test_cache_returns_the_same_principal_without_reverifying(
    token_forge: TokenForge, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = token_forge.token(["predict:x"])
    first = verifier.verify(token)
    assert verifier.verifications == 1

    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(verify_module.jwt, "decode", boom)
    for _ in range(3):
        assert verifier.verify(token) is first
    assert verifier.verifications == 1
    assert verifier.cache_hits == 3


@pytest.mark.anyio
async def test_async_verify_uses_the_same_cache(
    token_forge: TokenForge, verifier: TokenVerifier
) -> None:
    token = token_forge.token()
    principal = await verifier.averify(token)
    assert verifier.verify(token) is principal
    assert verifier.verifications == 1


def test_cache_entry_ends_at_token_expiry(token_forge: TokenForge) -> None:
    clock = [time.time()]
    verifier = TokenVerifier(KeySet.from_file(token_forge.jwks_path), clock=lambda: clock[0])
    token = token_forge.token(ttl_s=60)
    verifier.verify(token)
    verifier.verify(token)
    assert verifier.verifications == 1
    clock[0] += 61  # the cache's clock says expired: verify again (python-jose decides)
    verifier.verify(token)
    assert verifier.verifications == 2


def test_cache_is_bounded_and_evicts_oldest(token_forge: TokenForge) -> None:
    verifier = TokenVerifier(KeySet.from_file(token_forge.jwks_path), cache_size=3)
    tokens = [token_forge.token(sub=f"c{i}") for i in range(5)]
    for token in tokens:
        verifier.verify(token)
    assert len(verifier._cache) == 3
    verifier.verify(tokens[-1])  # still cached
    assert verifier.verifications == 5
    verifier.verify(tokens[0])  # evicted: verified again
    assert verifier.verifications == 6


def test_cache_is_thread_safe(token_forge: TokenForge) -> None:
    verifier = TokenVerifier(KeySet.from_file(token_forge.jwks_path), cache_size=50)
    tokens = [token_forge.token(sub=f"c{i}") for i in range(100)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(300):
                token = tokens[(i + offset) % len(tokens)]
                assert verifier.verify(token).sub == f"c{(i + offset) % len(tokens)}"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n * 7,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(verifier._cache) <= 50


# --------------------------------------------------------------------------- key rotation


def test_rotation_keeps_tokens_signed_before_valid(tmp_path: Path) -> None:
    init_keys(tmp_path)
    old_token = issue_token(load_signing_key(tmp_path), sub="old", scopes=[], ttl_s=600)
    init_keys(tmp_path, force=True)
    new_token = issue_token(load_signing_key(tmp_path), sub="new", scopes=[], ttl_s=600)
    verifier = TokenVerifier(KeySet.from_file(tmp_path / "jwks.json"))
    assert verifier.verify(old_token).sub == "old"
    assert verifier.verify(new_token).sub == "new"
    # Two rotations later the first key is gone from the JWKS.
    init_keys(tmp_path, force=True)
    fresh = TokenVerifier(KeySet.from_file(tmp_path / "jwks.json"))
    assert rejected(fresh, old_token).message.startswith("unknown signing key id")
    assert fresh.verify(new_token).sub == "new"


def test_file_keyset_reloads_on_unknown_kid(tmp_path: Path) -> None:
    init_keys(tmp_path)
    verifier = TokenVerifier(KeySet.from_file(tmp_path / "jwks.json", min_refresh_interval_s=0))
    init_keys(tmp_path, force=True)  # rotated while the verifier runs
    token = issue_token(load_signing_key(tmp_path), sub="after", scopes=[], ttl_s=600)
    assert verifier.verify(token).sub == "after"
    assert verifier.keyset.loads == 2


def test_reload_is_rate_limited(token_forge: TokenForge) -> None:
    clock = [0.0]
    keyset = KeySet(
        KeySet.from_file(token_forge.jwks_path)._keys,
        source="test",
        loader=lambda: json.loads(token_forge.jwks_path.read_text()),
        min_refresh_interval_s=30,
        clock=lambda: clock[0],
    )
    verifier = TokenVerifier(keyset)
    unknown = token_forge.forge("unknown_kid")
    clock[0] = 31.0
    for _ in range(5):
        rejected(verifier, unknown)
    assert keyset.loads == 2  # construction + one reload
    clock[0] = 62.0
    rejected(verifier, unknown)
    assert keyset.loads == 3


def test_failed_reload_keeps_the_keys(token_forge: TokenForge) -> None:
    def broken() -> dict[str, Any]:
        raise ConfigError("gone")

    keyset = KeySet(
        KeySet.from_file(token_forge.jwks_path)._keys,
        source="test",
        loader=broken,
        min_refresh_interval_s=0,
    )
    verifier = TokenVerifier(keyset)
    rejected(verifier, token_forge.forge("unknown_kid"))
    assert verifier.verify(token_forge.token()).sub == "test-client"


# ----------------------------------------------------------------------- bad key sources


def test_missing_jwks_file_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vigie keys init"):
        KeySet.from_file(tmp_path / "jwks.json")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "cannot read"),
        ('{"nokeys": []}', "not a JWKS"),
        ('{"keys": []}', "no RSA RS256"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}', "no RSA RS256"),
        ('{"keys": [{"kty": "RSA", "kid": "x", "n": "AQAB", "e": "AQAB", "d": "AQAB"}]}',
         "private material"),
    ],
)  # fmt: skip
def test_invalid_jwks_file_fails_fast(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=words):
        KeySet.from_file(path)


# ---------------------------------------------------------------- JWKS over real HTTP


@dataclass
class JWKSServer:
    url: str
    requests: list[str]


@pytest.fixture
def jwks_server(tmp_path: Path) -> Iterator[JWKSServer]:
    """``http.server`` on a free loopback port serving ``tmp_path`` (keys dir = tmp_path)."""
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield JWKSServer(f"http://127.0.0.1:{server.server_address[1]}/jwks.json", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_keyset_from_url_refetches_on_unknown_kid(tmp_path: Path, jwks_server: JWKSServer) -> None:
    init_keys(tmp_path)
    old = issue_token(load_signing_key(tmp_path), sub="old", scopes=[], ttl_s=600)
    keyset = KeySet.from_url(jwks_server.url, min_refresh_interval_s=0)
    verifier = TokenVerifier(keyset)
    assert verifier.verify(old).sub == "old"
    assert len(jwks_server.requests) == 1

    init_keys(tmp_path, force=True)
    new = issue_token(load_signing_key(tmp_path), sub="new", scopes=[], ttl_s=600)
    assert verifier.verify(new).sub == "new"
    assert len(jwks_server.requests) == 2
    verifier.clear_cache()
    assert verifier.verify(old).sub == "old"  # the previous key is still published
    assert len(jwks_server.requests) == 2


@pytest.mark.anyio
async def test_async_refetch_on_unknown_kid(tmp_path: Path, jwks_server: JWKSServer) -> None:
    init_keys(tmp_path)
    verifier = TokenVerifier(KeySet.from_url(jwks_server.url, min_refresh_interval_s=0))
    init_keys(tmp_path, force=True)
    token = issue_token(load_signing_key(tmp_path), sub="new", scopes=[], ttl_s=600)
    assert (await verifier.averify(token)).sub == "new"
    assert len(jwks_server.requests) == 2


def test_url_refetch_is_rate_limited_by_default(tmp_path: Path, jwks_server: JWKSServer) -> None:
    init_keys(tmp_path)
    verifier = TokenVerifier(KeySet.from_url(jwks_server.url))  # 30 s between fetches
    forge = TokenForge(tmp_path)
    for _ in range(10):
        rejected(verifier, forge.forge("unknown_kid"))
    assert len(jwks_server.requests) == 1


def test_keyset_from_url_fails_fast_when_unreachable() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigError, match="start the auth service first"):
        KeySet.from_url(f"http://127.0.0.1:{port}/.well-known/jwks.json", timeout_s=2)


def test_keyset_from_url_fails_fast_on_404(tmp_path: Path, jwks_server: JWKSServer) -> None:
    with pytest.raises(ConfigError, match="404"):
        KeySet.from_url(jwks_server.url)  # nothing in tmp_path yet


def test_principal_is_immutable() -> None:
    principal = Principal(sub="a", scopes=frozenset({"x"}), claims={})
    with pytest.raises(AttributeError):
        principal.sub = "b"  # type: ignore[misc]
