from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from jose import jwt

from vigie.auth.keys import (
    init_keys,
    issue_token,
    jwk_thumbprint,
    load_signing_key,
    parse_scopes,
    parse_ttl,
)
from vigie.contract.errors import ConfigError


def jwks_kids(keys_dir: Path) -> list[str]:
    return [k["kid"] for k in json.loads((keys_dir / "jwks.json").read_text())["keys"]]


def test_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 section 3.1
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_init_writes_private_key_0600_and_public_jwks(tmp_path: Path) -> None:
    kid = init_keys(tmp_path / "keys")
    private = tmp_path / "keys" / "private.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes()
    (jwk,) = json.loads((tmp_path / "keys" / "jwks.json").read_text())["keys"]
    assert set(jwk) == {"kty", "n", "e", "kid", "use", "alg"}
    assert jwk["kid"] == kid == jwk_thumbprint(jwk)
    assert (jwk["kty"], jwk["use"], jwk["alg"], jwk["e"]) == ("RSA", "sig", "RS256", "AQAB")
    assert load_signing_key(tmp_path / "keys").kid == kid


def test_init_is_idempotent(tmp_path: Path) -> None:
    kid = init_keys(tmp_path)
    pem = (tmp_path / "private.pem").read_bytes()
    assert init_keys(tmp_path) == kid
    assert (tmp_path / "private.pem").read_bytes() == pem
    assert jwks_kids(tmp_path) == [kid]


def test_init_repairs_a_lost_jwks(tmp_path: Path) -> None:
    kid = init_keys(tmp_path)
    (tmp_path / "jwks.json").unlink()
    assert init_keys(tmp_path) == kid
    assert jwks_kids(tmp_path) == [kid]


def test_rotation_keeps_the_previous_public_key_only(tmp_path: Path) -> None:
    first = init_keys(tmp_path)
    second = init_keys(tmp_path, force=True)
    assert second != first
    assert load_signing_key(tmp_path).kid == second
    assert jwks_kids(tmp_path) == [second, first]
    third = init_keys(tmp_path, force=True)
    assert jwks_kids(tmp_path) == [third, second]


def test_signing_key_repr_hides_the_private_key(tmp_path: Path) -> None:
    init_keys(tmp_path)
    assert "PRIVATE" not in repr(load_signing_key(tmp_path))


def test_missing_key_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vigie keys init"):
        load_signing_key(tmp_path / "nowhere")


def test_issue_token_claims_and_header(tmp_path: Path) -> None:
    init_keys(tmp_path)
    key = load_signing_key(tmp_path)
    token = issue_token(key, sub="ops", scopes=["predict:a feedback:a", "predict:a"], ttl_s=600)
    header = jwt.get_unverified_header(token)
    claims = jwt.get_unverified_claims(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == key.kid
    assert claims["iss"] == "vigie"
    assert claims["aud"] == "vigie"
    assert claims["sub"] == "ops"
    assert claims["scope"] == "predict:a feedback:a"
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 600
    assert len(claims["jti"]) == 32
    other = issue_token(key, sub="ops", scopes=[], ttl_s=600)
    assert jwt.get_unverified_claims(other)["jti"] != claims["jti"]


def test_issue_token_refuses_nonsense(tmp_path: Path) -> None:
    init_keys(tmp_path)
    key = load_signing_key(tmp_path)
    with pytest.raises(ValueError):
        issue_token(key, sub="", scopes=[], ttl_s=60)
    with pytest.raises(ValueError):
        issue_token(key, sub="a", scopes=[], ttl_s=0)
    with pytest.raises(ValueError, match="invalid scope"):
        issue_token(key, sub="a", scopes=['bad"scope'], ttl_s=60)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("30m", 1800), ("900s", 900), ("900", 900), (" 2H ", 7200), ("1d", 86400)],
)
def test_parse_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "-5", "0", "1.5h", "1 h 2"])
def test_parse_ttl_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ttl(text)


def test_parse_scopes() -> None:
    assert parse_scopes("a:b  c:d a:b") == ("a:b", "c:d")
    assert parse_scopes(["a:b c:d", "e:f"]) == ("a:b", "c:d", "e:f")
    assert parse_scopes("") == ()
