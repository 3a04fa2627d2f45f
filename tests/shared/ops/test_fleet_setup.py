"""What `vigie fleet run` prepares before starting anything: settings, certificate, nginx config,
dev client. (The running fleet is tested end to end in tests/e2e.)"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import ValidationError

from vigie.ops.fleet import FleetSettings
from vigie.ops.gateway import check_config, render, write_config
from vigie.ops.launcher import DEV_CLIENT, ensure_dev_client, fleet_scopes
from vigie.ops.registry import Kind, Piece, Workers, load, prediction_service
from vigie.ops.tls import ensure_dev_certificate
from vigie.settings import VigieSettings
from vigie_services.auth.clients import ClientStore

REGISTRY = load()
PORTS = REGISTRY.ports
PREDICTION_PIECES = REGISTRY.prediction_names
# A piece the registry does not declare: the fleet's settings, gateway and scopes follow it.
FAKE = prediction_service("fake-piece", 18199, "vigie_services.fake_piece.service:FakeService")

needs_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
    reason="nginx is not installed (make system-deps)",
)


def test_defaults_are_design_md_ports() -> None:
    fleet = FleetSettings()
    assert (fleet.http_port, fleet.https_port, fleet.redis_port) == (8080, 8443, 6379)
    assert {p: fleet.port(p) for p in PORTS} == PORTS
    assert fleet.pieces == ["auth", "alerting", *PREDICTION_PIECES]


def test_ports_and_services_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_FLEET_PORTS", '{"auth": 18090, "turbine-nox": 18104}')
    monkeypatch.setenv("VIGIE_FLEET_SERVICES", '["turbine-nox"]')
    fleet = FleetSettings()
    assert fleet.port("auth") == 18090 and fleet.port("alerting") == 8100
    assert fleet.pieces == ["auth", "alerting", "turbine-nox"]


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("VIGIE_FLEET_PORTS", '{"nox": 1}', "unknown pieces"),
        ("VIGIE_FLEET_PORTS", '{"auth": 70000}', "less than or equal to 65535"),
        ("VIGIE_FLEET_SERVICES", '["auth"]', "auth and alerting always run"),
        ("VIGIE_FLEET_MAX_BODY", "8 MB", "nginx size"),
        ("VIGIE_FLEET_CLIENT_RATE", "0", "greater than or equal to 1"),
    ],
)
def test_bad_fleet_settings_fail_fast(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, why: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=why):
        FleetSettings()


def test_dev_certificate_covers_loopback_and_is_kept(tmp_path: Path) -> None:
    files = ensure_dev_certificate(tmp_path)
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)
    assert files.key.stat().st_mode & 0o777 == 0o600
    before = files.cert.read_bytes()
    assert ensure_dev_certificate(tmp_path).cert.read_bytes() == before  # kept
    other = ensure_dev_certificate(tmp_path, ("localhost", "vigie.internal"))
    assert other.cert.read_bytes() != before  # a name it lacked: made again


def test_a_damaged_certificate_is_replaced(tmp_path: Path) -> None:
    files = ensure_dev_certificate(tmp_path)
    files.cert.write_text("not a certificate")
    again = ensure_dev_certificate(tmp_path)
    x509.load_pem_x509_certificate(again.cert.read_bytes())


def test_config_routes_every_piece_with_its_limits(tmp_path: Path) -> None:
    fleet = FleetSettings(
        ports={"turbine-nox": 18104}, client_rate=7, client_burst=3, max_body="64k"
    )
    text = render(fleet, ensure_dev_certificate(tmp_path))
    for piece in fleet.pieces:
        assert f"location /{piece}/ {{" in text
        assert f"proxy_pass http://vigie_{piece.replace('-', '_')}/;" in text
    assert "server 127.0.0.1:18104 max_fails=0;" in text
    assert "rate=7r/s" in text and "burst=3 nodelay" in text
    assert "client_max_body_size 64k;" in text
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text and "server_tokens off;" in text


def test_config_routes_only_the_chosen_services(tmp_path: Path) -> None:
    text = render(FleetSettings(services=["gamma-classifier"]), ensure_dev_certificate(tmp_path))
    assert "location /gamma-classifier/ {" in text and "location /auth/ {" in text
    assert "turbine-nox" not in text


@needs_nginx
def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    files = write_config(FleetSettings(), ensure_dev_certificate(tmp_path / "tls"), tmp_path)
    check_config(files)  # raises with nginx's words otherwise
    assert (files.prefix / "logs").is_dir() and (files.prefix / "tmp").is_dir()


@needs_nginx
def test_nginx_refusal_is_reported_with_its_reason(tmp_path: Path) -> None:
    from vigie.contract.errors import ConfigError

    files = write_config(FleetSettings(), ensure_dev_certificate(tmp_path / "tls"), tmp_path)
    files.config.write_text(files.config.read_text().replace("server_tokens off;", "bogus on;"))
    with pytest.raises(ConfigError, match="unknown directive"):
        check_config(files)


def test_dev_client_is_made_once_and_its_secret_works(tmp_path: Path) -> None:
    settings = VigieSettings(var_dir=tmp_path / "var", keys_dir=tmp_path / "keys")
    (tmp_path / "keys").mkdir()
    fleet = FleetSettings()
    path = ensure_dev_client(settings, fleet)
    saved = json.loads(path.read_text())
    assert saved["client_id"] == DEV_CLIENT and path.stat().st_mode & 0o777 == 0o600
    store = ClientStore.from_settings(settings)
    try:
        assert store.verify_client(DEV_CLIENT, saved["client_secret"]) == set(fleet_scopes(fleet))
        assert ensure_dev_client(settings, fleet) == path
        assert json.loads(path.read_text()) == saved  # kept: still valid
        path.write_text(json.dumps({"client_id": DEV_CLIENT, "client_secret": "lost"}))
        ensure_dev_client(settings, fleet)
        renewed = json.loads(path.read_text())
        assert renewed["client_secret"] != saved["client_secret"]
        assert store.verify_client(DEV_CLIENT, saved["client_secret"]) is None
        assert store.verify_client(DEV_CLIENT, renewed["client_secret"]) is not None
    finally:
        store.close()


# -- The gateway config for containers (`vigie fleet config --out ... --no-check`) ----------------

CONTAINER_HOSTS = {piece: piece for piece in PORTS}  # compose service names = piece names


def _fleet_config(*args: str):  # -> click.testing.Result
    """``vigie fleet config ARGS`` run in this process."""
    from typer.testing import CliRunner

    from vigie.ops.cli import app

    return CliRunner().invoke(app, ["fleet", "config", *args])


def test_container_config_routes_to_host_names_and_listens_everywhere(tmp_path: Path) -> None:
    from vigie.ops.tls import TlsFiles

    fleet = FleetSettings(host="0.0.0.0", upstream_hosts=CONTAINER_HOSTS)
    secrets = TlsFiles(Path("/run/secrets/gateway.crt"), Path("/run/secrets/gateway.key"))
    text = render(fleet, secrets, access_log="/dev/stdout")
    for piece, port in PORTS.items():
        assert f"server {piece}:{port} max_fails=0;" in text
    assert "listen 0.0.0.0:8080;" in text and "listen 0.0.0.0:8443 ssl" in text
    # Paths as nginx sees them in the container: kept, although absent on this machine.
    assert "ssl_certificate /run/secrets/gateway.crt;" in text
    assert "ssl_certificate_key /run/secrets/gateway.key;" in text
    assert "access_log /dev/stdout vigie_json;" in text


def test_upstream_hosts_default_to_the_fleet_host(tmp_path: Path) -> None:
    fleet = FleetSettings(upstream_hosts={"auth": "auth"})
    text = render(fleet, ensure_dev_certificate(tmp_path))
    assert "server auth:8090 max_fails=0;" in text
    assert "server 127.0.0.1:8100 max_fails=0;" in text  # alerting: not in the mapping


def test_upstream_hosts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_FLEET_UPSTREAM_HOSTS", '{"turbine-nox": "nox.internal"}')
    assert FleetSettings().upstream_host("turbine-nox") == "nox.internal"
    monkeypatch.setenv("VIGIE_FLEET_UPSTREAM_HOSTS", '{"nox": "nox.internal"}')
    with pytest.raises(ValidationError, match="unknown pieces"):
        FleetSettings()


@pytest.mark.parametrize(
    ("fleet", "access_log", "why"),
    [
        (FleetSettings(), "/var/log/a b.json", "access log"),
        (FleetSettings(), "off; include /etc/passwd", "access log"),
        (
            FleetSettings(upstream_hosts={"auth": "auth;evil"}),
            "logs/a.json",
            "upstream host of auth",
        ),
        (FleetSettings(host="0.0.0.0 x"), "logs/a.json", "listen address"),
    ],
)
def test_values_nginx_would_misread_are_refused(
    tmp_path: Path, fleet: FleetSettings, access_log: str, why: str
) -> None:
    from vigie.contract.errors import ConfigError

    with pytest.raises(ConfigError, match=why):
        render(fleet, ensure_dev_certificate(tmp_path), access_log=access_log)


def test_write_config_to_another_path(tmp_path: Path) -> None:
    tls = ensure_dev_certificate(tmp_path / "tls")
    out = tmp_path / "image" / "nginx.conf"
    files = write_config(FleetSettings(), tls, tmp_path / "var", out=out, access_log="/dev/stdout")
    assert files.config == out.resolve() and out.is_file()
    assert "access_log /dev/stdout vigie_json;" in out.read_text()
    assert files.access_log == Path("/dev/stdout")
    assert not (tmp_path / "var" / "nginx" / "nginx.conf").exists()


@needs_nginx
def test_nginx_accepts_the_container_shaped_config(tmp_path: Path) -> None:
    """The container config (every piece by host name, all addresses, log to stdout) is valid
    nginx: here the host names all resolve (localhost), in compose they are service names."""
    fleet = FleetSettings(host="0.0.0.0", upstream_hosts=dict.fromkeys(PORTS, "localhost"))
    fleet = fleet.model_copy(update={"http_port": 18080, "https_port": 18443})
    tls = ensure_dev_certificate(tmp_path / "tls")
    files = write_config(
        fleet, tls, tmp_path / "var", out=tmp_path / "nginx.conf", access_log="/dev/stdout"
    )
    check_config(files)


@pytest.fixture
def fleet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """VIGIE_* pointing into tmp_path; cwd moved so no stray .env file is read."""
    import os

    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("VIGIE_FLEET_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VIGIE_VAR_DIR", str(tmp_path / "var"))
    return tmp_path / "var"


def test_fleet_config_cli_for_containers(fleet_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_FLEET_HOST", "0.0.0.0")
    monkeypatch.setenv("VIGIE_FLEET_UPSTREAM_HOSTS", json.dumps(CONTAINER_HOSTS))
    out = fleet_env.parent / "gateway" / "nginx.conf"
    result = _fleet_config(
        "--out", str(out), "--no-check", "--access-log", "/dev/stdout",
        "--tls-cert", "/run/secrets/gateway.crt", "--tls-key", "/run/secrets/gateway.key",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out.resolve())
    text = out.read_text()
    assert "server energy-anomaly:8105 max_fails=0;" in text
    assert "ssl_certificate /run/secrets/gateway.crt;" in text
    assert "access_log /dev/stdout vigie_json;" in text
    assert not (fleet_env / "tls").exists()  # a certificate was given: no dev one made


def test_fleet_config_cli_default_makes_the_dev_certificate(fleet_env: Path) -> None:
    result = _fleet_config("--no-check")
    assert result.exit_code == 0, result.output
    config = fleet_env / "nginx" / "nginx.conf"
    assert result.stdout.strip() == str(config.resolve())
    assert f"ssl_certificate {(fleet_env / 'tls' / 'gateway.crt').resolve()};" in config.read_text()


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--tls-cert", "/run/secrets/gateway.crt"], "go together"),
        (["--tls-key", "/run/secrets/gateway.key"], "go together"),
        (["--no-check", "--access-log", "/dev/std out"], "access log"),
    ],
)
def test_fleet_config_cli_refuses_bad_options(fleet_env: Path, args: list[str], why: str) -> None:
    result = _fleet_config(*args)
    assert result.exit_code == 2
    assert why in result.output
    assert not (fleet_env / "nginx" / "nginx.conf").exists()


# -- The fleet follows the registry of pieces ----------------------------------------------------


def test_a_piece_added_to_the_registry_runs_on_its_port_by_default() -> None:
    fleet = FleetSettings(registry=REGISTRY.with_piece(FAKE))
    assert fleet.pieces == ["auth", "alerting", *PREDICTION_PIECES, "fake-piece"]
    assert fleet.services[-1] == "fake-piece" and fleet.port("fake-piece") == 18199
    assert (
        FleetSettings(registry=REGISTRY.with_piece(FAKE), ports={"fake-piece": 1}).port(
            "fake-piece"
        )
        == 1
    )
    # The installed registry does not know it: settings naming it are refused, with the list.
    with pytest.raises(ValidationError, match="unknown pieces \\['fake-piece'\\]; known: auth"):
        FleetSettings(services=["fake-piece"])


def test_platform_pieces_always_run_and_are_not_services() -> None:
    platform = Piece(name="audit", port=18300, app="vigie_services.audit.app:create_app()")
    registry = REGISTRY.with_piece(platform)
    fleet = FleetSettings(registry=registry, services=["turbine-nox"])
    assert fleet.pieces == ["auth", "alerting", "turbine-nox", "audit"]
    with pytest.raises(ValidationError, match="not \\['audit'\\]; auth and alerting and audit"):
        FleetSettings(registry=registry, services=["audit"])


def test_the_gateway_routes_a_new_piece_at_its_prefix(tmp_path: Path) -> None:
    registry = REGISTRY.with_piece(FAKE).with_piece(
        prediction_service("odd-one", 18200, "vigie_services.odd.service:Odd", prefix="/odd/")
    )
    text = render(FleetSettings(registry=registry), ensure_dev_certificate(tmp_path))
    assert "server 127.0.0.1:18199 max_fails=0;" in text
    assert "location /fake-piece/ {" in text and "proxy_pass http://vigie_fake_piece/;" in text
    assert "location /odd/ {" in text and "X-Forwarded-Prefix /odd;" in text
    assert "location /odd-one/" not in text


@needs_nginx
def test_nginx_accepts_the_config_of_a_grown_registry(tmp_path: Path) -> None:
    fleet = FleetSettings(registry=REGISTRY.with_piece(FAKE))
    check_config(write_config(fleet, ensure_dev_certificate(tmp_path / "tls"), tmp_path))


def test_upstreams_by_name_reach_each_piece_at_its_own_name(tmp_path: Path) -> None:
    fleet = FleetSettings(
        registry=REGISTRY.with_piece(FAKE),
        upstream_by_name=True,
        upstream_hosts={"auth": "auth.internal"},
    )
    text = render(fleet, ensure_dev_certificate(tmp_path))
    assert "server auth.internal:8090 max_fails=0;" in text  # the mapping wins
    for piece in fleet.pieces[1:]:
        assert f"server {piece}:{fleet.port(piece)} max_fails=0;" in text


def test_the_dev_scopes_are_the_pieces_scopes() -> None:
    everything = set(fleet_scopes(FleetSettings()))
    assert {"alerts:read", "alerts:ack", "subscribers:admin", "models:admin"} <= everything
    assert everything == {s for p in REGISTRY for s in p.scopes}
    assert {f"{k}:{s}" for s in PREDICTION_PIECES for k in ("predict", "feedback")} <= everything
    chosen = set(fleet_scopes(FleetSettings(services=["turbine-nox"])))
    assert "predict:turbine-nox" in chosen and "predict:solar-flare" not in chosen
    grown = set(fleet_scopes(FleetSettings(registry=REGISTRY.with_piece(FAKE))))
    assert grown - everything == {"predict:fake-piece", "feedback:fake-piece"}


def test_the_declared_pieces_are_design_md_s_with_their_policies() -> None:
    assert REGISTRY.get("alerting").workers is Workers.ONE
    assert {p.name for p in REGISTRY if p.workers is Workers.ONE} == {"alerting"}
    assert [p.name for p in REGISTRY if p.kind is Kind.PLATFORM] == ["auth", "alerting"]
    assert all(p.prefix == f"/{p.name}/" for p in REGISTRY)
