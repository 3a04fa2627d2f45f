"""docker-compose.yml, the Dockerfile, .dockerignore and compose.env.example.

No Docker engine runs here: the compose file is checked as ``docker-compose config`` resolves it
(Debian's docker-compose 1.29; without it the compose tests skip, except under CI, where a skip
would hide that the file is not checked: there they fail), and the Dockerfile is parsed as text.
The snippets of Python the Dockerfile runs at build time are run here on small inputs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.conftest import REPO_ROOT, _under_ci
from vigie.auth.keys import JWKS_FILE, PRIVATE_KEY_FILE
from vigie.ops.artifacts.dockerfile import Stage, chain, exec_form, serve_command, stages
from vigie.ops.registry import load
from vigie.ops.tls import CERT_FILE, KEY_FILE
from vigie_services.alerting.settings import AlertingSettings

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
ENV_EXAMPLE = REPO_ROOT / "compose.env.example"
DESIGN_MD = Path(REPO_ROOT).parent / "shared" / "design.md"

REGISTRY = load()
PORTS = REGISTRY.ports  # the source of everything below: the pieces' declarations
PREDICTION_PIECES = REGISTRY.prediction_names
GATEWAY_PORTS = (8080, 8443)  # design.md section 1: http, https
OPS_PORTS = {"prometheus": 9090, "grafana": 3000}
PUBLISHING = frozenset({"gateway", *OPS_PORTS})
TARGETS = frozenset({*PORTS, "gateway"})  # one Dockerfile target per piece
SECRETS_DIR = "/run/secrets"
DOCKER_COMPOSE_MISSING = "docker-compose is not installed (apt-get install docker-compose)"


def _run(
    args: list[str], env: dict[str, str], cwd: Path, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """``args`` run in ``cwd`` with exactly ``env``, its output captured as text (2 min at most)."""
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=check
    )


# -- docker-compose config ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``docker-compose config`` of a fresh clone: no .env, no VIGIE_*/COMPOSE_* variables."""
    exe = shutil.which("docker-compose")
    if exe is None:
        if _under_ci():
            pytest.fail(f"{DOCKER_COMPOSE_MISSING} (CI is set: compose must be checked)")
        pytest.skip(DOCKER_COMPOSE_MISSING)
    no_dotenv = tmp_path_factory.mktemp("compose") / "empty.env"
    no_dotenv.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIE_", "COMPOSE_"))}
    command = [exe, "--env-file", str(no_dotenv), "-f", str(COMPOSE_FILE), "config"]
    done = _run(command, env, REPO_ROOT)
    assert done.returncode == 0, f"docker-compose config failed:\n{done.stderr}"
    assert "WARNING" not in done.stderr, done.stderr  # e.g. a variable without a default
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


@pytest.fixture
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@dataclass(frozen=True)
class Published:
    host_ip: str
    published: int
    target: int


def _published(service: dict[str, Any]) -> list[Published]:
    """The ``ports`` of a service, from either syntax docker-compose prints."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append(
                Published(port.get("host_ip", ""), int(port["published"]), int(port["target"]))
            )
            continue
        parts = str(port).split("/")[0].split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        out.append(Published(host_ip, int(parts[-2] if len(parts) > 1 else 0), int(parts[-1])))
    return out


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (volume name or host path) of a service's ``volumes``."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out[volume["target"]] = volume["source"]
        else:
            source, target = str(volume).split(":")[:2]
            out[target] = source
    return out


def _secrets(service: dict[str, Any]) -> set[str]:
    return {s["source"] if isinstance(s, dict) else s for s in service.get("secrets", [])}


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service.get("healthcheck", {}).get("test")
    return " ".join(test) if isinstance(test, list) else str(test or "")


def test_design_md_lists_the_ports_compose_uses() -> None:
    """design.md section 1 and the registry of pieces (the source of everything below) agree."""
    if not DESIGN_MD.is_file():
        pytest.skip(f"{DESIGN_MD} is absent (the shared design folder is not beside the repo)")
    rows = {}
    for line in DESIGN_MD.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and re.search(r"\d", cells[2]):
            rows[cells[0].strip("`")] = cells[2]
    assert {p: int(rows[p]) for p in PORTS if p in rows} == PORTS, rows
    assert [int(n) for n in re.findall(r"\d+", rows["gateway (nginx)"])] == list(GATEWAY_PORTS)


def test_every_piece_is_a_service_on_its_port(services: dict[str, dict[str, Any]]) -> None:
    for piece, port in PORTS.items():
        service = services.get(piece)
        assert service is not None, f"no compose service {piece}"
        assert service["build"]["target"] == piece
        assert service["image"].startswith(f"vigie/{piece}:")
        assert [str(p) for p in service.get("expose", [])] == [str(port)], piece
        assert f"http://127.0.0.1:{port}/readyz" in _healthcheck_text(service), piece
    gateway = services["gateway"]
    assert gateway["build"]["target"] == "gateway"
    assert sorted(p.target for p in _published(gateway)) == list(GATEWAY_PORTS)
    assert f"127.0.0.1:{GATEWAY_PORTS[0]}/healthz" in _healthcheck_text(gateway)


def test_every_service_has_a_healthcheck_and_a_restart_policy(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") in ("unless-stopped", "always"), f"{name}: restart"


def test_dependencies_wait_until_healthy(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for other, how in depends.items():
            assert other in services, f"{name} depends on an unknown {other}"
            assert how == {"condition": "service_healthy"}, f"{name} -> {other}: {how}"
    assert set(services["gateway"]["depends_on"]) == set(PORTS)
    for piece in PORTS:
        assert "postgres" in services[piece]["depends_on"], piece
    for piece in ("alerting", *PREDICTION_PIECES):
        assert "redis" in services[piece]["depends_on"], piece
    assert "prometheus" in services["grafana"]["depends_on"]


def test_redis_keeps_an_append_only_file_on_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    command = redis["command"]
    words = command if isinstance(command, list) else shlex.split(command)
    assert words[0] == "redis-server"
    assert words[words.index("--appendonly") + 1] == "yes"
    assert _mounts(redis)["/data"] in compose["volumes"]


def test_state_lives_in_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    volumes = compose["volumes"]
    assert _mounts(services["postgres"])["/var/lib/postgresql/data"] in volumes
    assert _mounts(services["prometheus"])["/prometheus"] in volumes
    assert _mounts(services["grafana"])["/var/lib/grafana"] in volumes
    for piece in PREDICTION_PIECES:
        mounts = _mounts(services[piece])
        # Its own volume (seeded from the image's /app/models on first use), no one else's.
        assert mounts["/app/models"] == f"models-{piece}" and f"models-{piece}" in volumes
        assert mounts["/app/var/spool"] in volumes
        others = {_mounts(services[p])["/app/models"] for p in PREDICTION_PIECES if p != piece}
        assert mounts["/app/models"] not in others


def test_pieces_use_postgresql_redis_and_the_secrets(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["postgres"]["image"].startswith("postgres:")
    for piece in PORTS:
        env = services[piece]["environment"]
        url = make_url(env["VIGIE_DATABASE_URL"])
        assert (url.drivername, url.host) == ("postgresql+psycopg", "postgres"), piece
        assert env["VIGIE_REDIS_URL"] == "redis://redis:6379/0", piece
        assert env["VIGIE_JWT_PUBLIC_KEYS"] == f"{SECRETS_DIR}/{JWKS_FILE}", piece
        assert JWKS_FILE in _secrets(services[piece]), piece
    # Only auth holds the signing key: it reads private.pem and jwks.json from VIGIE_KEYS_DIR.
    assert services["auth"]["environment"]["VIGIE_KEYS_DIR"] == SECRETS_DIR
    holders = {name for name, s in services.items() if PRIVATE_KEY_FILE in _secrets(s)}
    assert holders == {"auth"}
    assert _secrets(services["gateway"]) == {CERT_FILE, KEY_FILE}


def test_secrets_come_from_the_files_setup_makes(compose: dict[str, Any]) -> None:
    files = {name: Path(s["file"]) for name, s in compose["secrets"].items()}
    assert files == {
        PRIVATE_KEY_FILE: REPO_ROOT / "var" / "keys" / PRIVATE_KEY_FILE,
        JWKS_FILE: REPO_ROOT / "var" / "keys" / JWKS_FILE,
        CERT_FILE: REPO_ROOT / "var" / "tls" / CERT_FILE,
        KEY_FILE: REPO_ROOT / "var" / "tls" / KEY_FILE,
    }


def test_only_the_gateway_and_the_ops_tools_publish_ports(
    services: dict[str, dict[str, Any]],
) -> None:
    publishing = {name for name, s in services.items() if s.get("ports")}
    assert publishing == PUBLISHING
    for name, port in OPS_PORTS.items():
        (published,) = _published(services[name])
        assert published == Published("127.0.0.1", port, port), name  # this host only
    https = next(p for p in _published(services["gateway"]) if p.target == GATEWAY_PORTS[1])
    assert https.published == GATEWAY_PORTS[1] and https.host_ip in ("", "0.0.0.0")


def test_prometheus_and_grafana_get_the_deploy_files(
    services: dict[str, dict[str, Any]],
) -> None:
    deploy = REPO_ROOT / "deploy"
    prometheus = _mounts(services["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == str(deploy / "prometheus/prometheus.yml")
    assert prometheus["/etc/prometheus/rules"] == str(deploy / "prometheus/rules")
    grafana = _mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"] == str(deploy / "grafana/provisioning")
    assert grafana["/var/lib/grafana/dashboards"] == str(deploy / "grafana/dashboards")
    for source in (*prometheus.values(), *grafana.values()):
        if source.startswith("/"):
            assert Path(source).exists(), f"{source} is mounted but absent"


def test_settings_come_from_the_example_env_file_on_a_fresh_clone(
    services: dict[str, dict[str, Any]],
) -> None:
    example = _env_assignments(ENV_EXAMPLE.read_text())
    for name in (*PORTS, "postgres"):
        env = services[name]["environment"]
        for key, value in example.items():
            if key not in ("VIGIE_REDIS_URL", "VIGIE_JWT_PUBLIC_KEYS", "VIGIE_KEYS_DIR"):
                assert str(env.get(key)) == value, f"{name}: {key}"
    postgres = services["postgres"]["environment"]
    url = make_url(services["auth"]["environment"]["VIGIE_DATABASE_URL"])
    assert (url.username, url.password, url.database) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )


def test_compose_builds_the_dockerfile_targets(services: dict[str, dict[str, Any]]) -> None:
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert set(built) == TARGETS
    stages = _stages()
    for name, build in built.items():
        assert Path(build["context"]) == REPO_ROOT
        assert build["target"] in stages, name


# -- compose.env.example --------------------------------------------------------------------------

_ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def _env_assignments(text: str, *, commented: bool = False) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match and (commented or not match.group(1)):
            out[match.group(2)] = match.group(3)
    return out


def test_every_variable_of_the_example_is_explained() -> None:
    """Each NAME=value line (set or commented out) sits under a comment that is not itself a
    variable, in the same paragraph."""
    explained = False
    for line in ENV_EXAMPLE.read_text().splitlines():
        text = line.strip()
        if not text:
            explained = False
        elif _ASSIGNMENT.match(text):
            assert explained, f"compose.env.example: {text!r} has no comment above it"
        elif text.startswith("#"):
            explained = True
        else:
            pytest.fail(f"compose.env.example: neither a comment nor NAME=value: {text!r}")


def test_the_example_names_only_real_settings() -> None:
    fields = set(AlertingSettings.model_fields)  # the shared settings and alerting's
    fields.add("workers")  # VIGIE_WORKERS: read by `vigie serve` and vigie.serve.gunicorn_conf
    names = _env_assignments(ENV_EXAMPLE.read_text(), commented=True)
    vigie = {n for n in names if n.startswith("VIGIE_")}
    unknown = sorted(n for n in vigie if n.removeprefix("VIGIE_").lower() not in fields)
    assert not unknown, f"compose.env.example: not settings of vigie: {unknown}"
    assert {"VIGIE_DATABASE_URL", "POSTGRES_PASSWORD"} <= set(names)
    # Set in docker-compose.yml: here they would only confuse.
    assert not {"VIGIE_REDIS_URL", "VIGIE_KEYS_DIR", "VIGIE_JWT_PUBLIC_KEYS"} & set(names)
    # A value docker-compose 1.x would take with its quotes, or Compose v2 would expand.
    for name, value in _env_assignments(ENV_EXAMPLE.read_text()).items():
        assert not re.search(r"[\"'$]", value), f"{name}={value}"


# -- Dockerfile -----------------------------------------------------------------------------------


@cache
def _stages() -> dict[str, Stage]:
    return stages(DOCKERFILE.read_text())


def _chain(name: str) -> list[Stage]:
    """``name`` and the stages it is built FROM, the target first."""
    return chain(_stages(), name)


def _effective(name: str, keyword: str) -> str | None:
    for stage in _chain(name):
        value = stage.last(keyword)
        if value is not None:
            return value
    return None


def _exec_form(args: str) -> list[str]:
    words = exec_form(args)
    assert words is not None, args
    return words


def test_a_target_per_piece_on_the_right_base() -> None:
    stages = _stages()
    assert set(stages) >= TARGETS
    for piece in PORTS:
        base = _chain(piece)[-1].base
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), f"{piece}: {base}"
    assert _chain("gateway")[-1].base.startswith("nginx:")


def test_every_runtime_stage_runs_as_a_user_that_is_not_root() -> None:
    for target in TARGETS:
        user = _effective(target, "USER")
        assert user is not None, f"{target}: no USER (would run as root)"
        assert user.split(":")[0] not in ("root", "0"), f"{target}: USER {user}"


def test_every_target_has_a_healthcheck_on_its_port() -> None:
    for piece, port in PORTS.items():
        check = _stages()[piece].last("HEALTHCHECK")
        assert check is not None, f"{piece}: no HEALTHCHECK"
        assert f"http://127.0.0.1:{port}/readyz" in check, piece
        assert "curl" not in check  # not in the slim image
        assert _stages()[piece].last("EXPOSE") == str(port)
    check = _stages()["gateway"].last("HEALTHCHECK")
    assert check is not None and f"127.0.0.1:{GATEWAY_PORTS[0]}/healthz" in check
    assert set(map(int, (_stages()["gateway"].last("EXPOSE") or "").split())) == set(GATEWAY_PORTS)


def test_the_command_of_each_target_serves_its_piece() -> None:
    for piece in PORTS:
        cmd = _exec_form(_stages()[piece].last("CMD") or "null")
        assert cmd == serve_command(piece) == ["vigie", "serve", piece, "--host", "0.0.0.0"]
        assert _effective(piece, "ENTRYPOINT") is None
    gateway = _stages()["gateway"]
    assert _exec_form(gateway.last("ENTRYPOINT") or "null") == []
    cmd = _exec_form(gateway.last("CMD") or "null")
    assert cmd[0] == "nginx" and "daemon off;" in cmd
    config = cmd[cmd.index("-c") + 1]
    assert any(config in copy for copy in gateway.all("COPY"))


def test_each_image_holds_only_its_own_service_package_and_model() -> None:
    packages = {p: p.replace("-", "_") for p in PORTS}
    for piece, package in packages.items():
        copied = set()
        for stage in _chain(piece):
            for args in stage.all("COPY"):
                copied |= set(re.findall(r"services/vigie_services/(\w+)/", args))
        assert copied == {package}, f"{piece} copies {sorted(copied)}"
    for piece in PREDICTION_PIECES:
        copies = _stages()[piece].all("COPY")
        assert any(f"--from=models /models/{piece}/ /app/models/{piece}/" in c for c in copies)
        run = " ".join(_stages()[piece].all("RUN"))
        assert f"vigie models show {piece}" in run  # the build fails unless the model loads


def test_the_gateway_config_is_rendered_for_compose(tmp_path: Path) -> None:
    """The Dockerfile's `vigie fleet config` command, run here with its output in tmp_path."""
    (run,) = _stages()["gateway-config"].all("RUN")
    words = shlex.split(run)
    assert words[0] == "env"
    start = words.index("vigie")
    env = dict(w.split("=", 1) for w in words[1:start] if "=" in w)
    # Each piece at its own name (compose and Kubernetes service names): no list of pieces here.
    assert env["VIGIE_FLEET_UPSTREAM_BY_NAME"] == "true" and "VIGIE_FLEET_UPSTREAM_HOSTS" not in env
    assert env["VIGIE_FLEET_HOST"] == "0.0.0.0"
    args = words[start + 1 :]
    out = Path(args[args.index("--out") + 1])
    assert _stages()["gateway"].all("COPY")[0].startswith(f"--from=gateway-config {out} ")
    assert "--no-check" in args
    assert args[args.index("--tls-cert") + 1] == f"{SECRETS_DIR}/{CERT_FILE}"
    assert args[args.index("--tls-key") + 1] == f"{SECRETS_DIR}/{KEY_FILE}"
    args[args.index("--out") + 1] = str(tmp_path / "nginx.conf")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env = {**clean, **env, "VIGIE_VAR_DIR": str(tmp_path / "var")}
    done = _run([sys.executable, "-m", "vigie", *args], env, tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "nginx.conf").read_text()
    for piece, port in PORTS.items():
        assert f"server {piece}:{port} max_fails=0;" in text
    assert "access_log /dev/stdout vigie_json;" in text
    # Rendered as a non-root user, hence without nginx's `user` directive: nginx runs as one too.
    user = _stages()["gateway-config"].last("USER")
    assert user is not None and user not in ("root", "0")


def _python_snippet(stage: str, marker: str) -> str:
    """The code of the `python -c "..."` RUN of ``stage`` that contains ``marker``."""
    for run in _stages()[stage].all("RUN"):
        words = shlex.split(run)
        for i, word in enumerate(words[:-2]):
            if word == "python" and words[i + 1] == "-c" and marker in words[i + 2]:
                return words[i + 2]
    raise AssertionError(f"no python -c with {marker!r} in stage {stage}")


def _distribution(requirement: str) -> str:
    return re.split(r"[^\w.-]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _ml_distributions() -> set[str]:
    """The distributions the Dockerfile keeps out of the core venv (auth, alerting, gateway)."""
    code = _python_snippet("deps-core", "tomllib")
    match = re.search(r"ml = \{([^}]*)\}", code)
    assert match, code
    return {name.strip(" '\"") for name in match.group(1).split(",")}


def test_the_dependencies_split_into_core_and_ml(tmp_path: Path) -> None:
    code = _python_snippet("deps-core", "tomllib")
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=30)
    core = (tmp_path / "core.txt").read_text().split()
    ml = (tmp_path / "ml.txt").read_text().split()
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(core + ml) == sorted(declared["dependencies"])
    assert {_distribution(d) for d in ml} == _ml_distributions() & {
        _distribution(d) for d in declared["dependencies"]
    }
    assert {"scikit-learn", "pandas"} <= {_distribution(d) for d in ml}
    # Shared code every piece runs imports these at module level (vigie.models.store).
    assert {"numpy", "joblib"} <= {_distribution(d) for d in core}


_ENTRY_POINTS_OF = """
import importlib.metadata as md, json, sys
eps = md.entry_points(group="vigie.pieces")
print(json.dumps([[ep.name, ep.value, str(ep.dist.locate_file(""))] for ep in eps]))
"""


def test_the_images_declare_the_entry_points_the_registry_reads(tmp_path: Path) -> None:
    """Images do not pip-install the project: the Dockerfile writes its entry points as a
    dist-info on PYTHONPATH, where importlib.metadata (hence the registry) finds them."""
    code = _python_snippet("deps-core", "entry-points")
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=30)
    copy = next(c for c in _stages()["app-core"].all("COPY") if "/build/dist-info/" in c)
    assert copy == "--from=deps-core /build/dist-info/ /app/services/"
    assert "/app/services" in (_effective("app-core", "ENV") or "")  # on PYTHONPATH
    # Found first on PYTHONPATH, before this checkout's own installation (cwd: away from the
    # checkout's vigie.egg-info, which `python -c` would find first).
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "dist-info")}
    done = _run([sys.executable, "-c", _ENTRY_POINTS_OF], env, tmp_path, check=True)
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = declared["entry-points"]["vigie.pieces"]
    found = json.loads(done.stdout)
    assert {name: value for name, value, _ in found} == wanted
    assert {where for _, _, where in found} == {str(tmp_path / "dist-info")}
    for stage in ("app-core", "app-ml"):
        copies = " ".join(_stages()[stage].all("COPY"))
        assert "services/vigie_services/pieces.py" in copies, stage  # what the entry point names


# Import names of the distributions that are not the distribution's name.
_MODULES = {"scikit-learn": "sklearn"}

_WITHOUT_ML = """
import sys
BLOCKED = set(sys.argv[1].split(","))

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} in the auth/alerting images")

sys.meta_path.insert(0, Blocker())

from pathlib import Path
from fastapi.testclient import TestClient
from vigie.auth.keys import init_keys
import vigie.ops.cli
import vigie.serve.gunicorn_conf
from vigie.ops.registry import load
from vigie.settings import VigieSettings
from vigie_services.alerting.app import create_app as alerting_app
from vigie_services.auth.app import create_app as auth_app

init_keys(Path(sys.argv[2]))
load().prepare("auth", VigieSettings())  # what `vigie serve` runs before gunicorn forks
load().prepare("alerting", VigieSettings())
for app in (auth_app(), alerting_app()):
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
print("ok", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


def test_auth_and_alerting_run_without_the_model_libraries(tmp_path: Path) -> None:
    """Their images have only the core venv: a module-level import of scikit-learn, pandas...
    in the code they run (shared/vigie included) would break them, so it fails here first."""
    blocked = {_MODULES.get(d, d.replace("-", "_")) for d in _ml_distributions()}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env = {
        **clean,
        "VIGIE_VAR_DIR": str(tmp_path / "var"),
        "VIGIE_KEYS_DIR": str(tmp_path / "keys"),
        "VIGIE_REDIS_URL": "redis://127.0.0.1:9/0",  # nothing there: only /healthz is asked
    }
    command = [sys.executable, "-c", _WITHOUT_ML, ",".join(sorted(blocked)), str(tmp_path / "keys")]
    done = _run(command, env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "ok []"


def _card(root: Path, service: str, sklearn: str) -> None:
    version = root / service / "v1"
    version.mkdir(parents=True)
    libraries = {"python": "3.11.7", "scikit-learn": sklearn, "numpy": "2.0.0", "joblib": "1.4.0"}
    (version / "card.json").write_text(json.dumps({"libraries": libraries}))


def test_prediction_images_pin_the_libraries_of_their_models(tmp_path: Path) -> None:
    code = _python_snippet("models", "card.json").replace("'/models'", repr(str(tmp_path)))
    _card(tmp_path, "solar-flare", "1.5.2")
    _card(tmp_path, "turbine-nox", "1.5.2")
    done = _run([sys.executable, "-c", code], dict(os.environ), tmp_path, check=True)
    assert done.stdout.split() == ["joblib==1.4.0", "numpy==2.0.0", "scikit-learn==1.5.2"]
    _card(tmp_path, "energy-anomaly", "1.6.0")
    done = _run([sys.executable, "-c", code], dict(os.environ), tmp_path)
    assert done.returncode != 0 and "different library versions" in done.stderr
    assert "scikit-learn" in done.stderr and "1.6.0" in done.stderr


# -- .dockerignore --------------------------------------------------------------------------------


def test_the_build_context_is_only_what_images_are_built_from() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert patterns[0] == "*"  # everything out, then what the Dockerfile copies back in
    let_in = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert let_in == {
        "pyproject.toml",
        "shared/vigie",
        "services/vigie_services",
        "nginx/nginx.conf.j2",
        "models",
    }
    sources = set()
    for stage in _stages().values():
        for args in stage.all("COPY"):
            words = [w for w in args.split() if not w.startswith("--")]
            if not args.startswith("--from="):
                sources |= {w.rstrip("/") for w in words[:-1]}
    assert all(any(s == p or s.startswith(p + "/") for p in let_in) for s in sources), sources
