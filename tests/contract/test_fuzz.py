"""Every piece fuzzed by schemathesis from its own OpenAPI, on its own port: the prediction
services (through the contract fixture), alerting and auth."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.conftest import Contract
from tests.contract.fuzz import fuzz
from tests.support.servers import RedisServer, ServiceProcess, free_port
from vigie.auth.keys import init_keys, issue_token, load_signing_key

pytestmark = pytest.mark.integration

#: Operations that create or change alerting subscribers stay out until their targets are
#: validated (a fuzzed target could make the fleet send traffic off the machine).
SUBSCRIBER_CHANGES = (
    "create_subscriber_v1_subscribers_post",
    "patch_subscriber_v1_subscribers__sub_id__patch",
    "test_subscriber_v1_subscribers__sub_id__test_post",
)


def test_schemathesis_finds_nothing(contract: Contract) -> None:
    assert contract.served.service is not None
    scopes = f"predict:{contract.name} feedback:{contract.name}"
    run = fuzz(contract.served.service.url, contract.served.token(scopes))
    print(f"schemathesis {contract.name}: {run.totals}")  # shown with -s / -rA
    assert run.ok, run.output[-6000:]


def platform_env(root: Path, redis: RedisServer) -> dict[str, str]:
    init_keys(root / "keys")
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: every channel stays local
    return {
        **os.environ,
        "VIGIE_KEYS_DIR": str(root / "keys"),
        "VIGIE_VAR_DIR": str(root / "var"),
        "VIGIE_REDIS_URL": redis.url,
        "VIGIE_SMTP_HOST": "127.0.0.1",
        "VIGIE_SMTP_PORT": str(free_port()),
        "VIGIE_NTFY_URL": closed,
        "VIGIE_SMS_GATEWAY_URL": closed,
        "VIGIE_PUBLIC_URL": "http://alerting.test",
    }


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("fuzz-platform")
    redis = RedisServer(root / "redis").start()
    try:
        yield root, platform_env(root, redis)
    finally:
        redis.stop()


@pytest.mark.parametrize(
    ("piece", "scopes", "exclude"),
    [
        ("alerting", "alerts:read alerts:ack subscribers:admin", SUBSCRIBER_CHANGES),
        ("auth", "", ()),
    ],
)
def test_schemathesis_finds_nothing_in_the_platform(
    platform: tuple[Path, dict[str, str]], piece: str, scopes: str, exclude: tuple[str, ...]
) -> None:
    root, env = platform
    service = ServiceProcess(piece, env, root / f"{piece}.log", workers=1).start()
    try:
        token = issue_token(
            load_signing_key(root / "keys"), sub="fuzz", scopes=scopes.split(), ttl_s=900
        )
        run = fuzz(service.url, token, exclude=exclude)
    finally:
        service.stop()
    print(f"schemathesis {piece}: {run.totals}")  # shown with -s / -rA
    assert run.ok, run.output[-6000:]
