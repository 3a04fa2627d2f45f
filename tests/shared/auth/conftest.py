from __future__ import annotations

import pytest

from tests.support.tokens import TokenForge, token_forge  # noqa: F401  (fixture)
from vigie.auth.keyset import KeySet
from vigie.auth.verify import TokenVerifier


@pytest.fixture
def verifier(token_forge: TokenForge) -> TokenVerifier:  # noqa: F811
    """A fresh verifier (empty cache) trusting the forge's keys."""
    return TokenVerifier(KeySet.from_file(token_forge.jwks_path), leeway_s=10)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
