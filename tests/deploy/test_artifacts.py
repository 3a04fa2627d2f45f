"""Every deployment file against the registry of pieces (vigie.ops.artifacts).

The committed files agree with the installed registry. A registry with one more piece makes each
check fail, naming that piece, until the files follow: here they are made to follow the way a
maintainer would (generated files regenerated, hand-written ones given the new piece by copying
an existing one), and then every check passes again.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from vigie.ops import procfile, prometheus
from vigie.ops.artifacts import (
    check_all,
    check_compose,
    check_dockerfile,
    check_kubernetes,
    check_procfile,
    check_prometheus,
    check_prometheus_kubernetes,
)
from vigie.ops.registry import Piece, Registry, load, prediction_service

REGISTRY = load()
# The new piece is made like an existing one (its files copied from turbine-nox's).
MODEL, MODEL_PORT, MODEL_PACKAGE = "turbine-nox", 8104, "turbine_nox"
FAKE = prediction_service("fake-piece", 8199, "vigie_services.fake_piece.service:FakeService")
GROWN = REGISTRY.with_piece(FAKE)

KUBE = REPO_ROOT / "deploy" / "kubernetes"
PROM = REPO_ROOT / "deploy" / "prometheus"


def _renamed(value: Any) -> Any:
    """``value`` (text, or YAML data) with turbine-nox's name, package and port made FAKE's."""
    if isinstance(value, str):
        return (
            value.replace(MODEL, FAKE.name)
            .replace(MODEL_PACKAGE, FAKE.name.replace("-", "_"))
            .replace(str(MODEL_PORT), str(FAKE.port))
        )
    if value == MODEL_PORT and isinstance(value, int) and not isinstance(value, bool):
        return FAKE.port
    if isinstance(value, dict):
        return {_renamed(k): _renamed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    return value


# -- following the new piece, file by file ------------------------------------------------------


def follow_compose(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())  # anchors and merge keys resolved
    doc["services"][FAKE.name] = _renamed(doc["services"][MODEL])
    doc["services"]["gateway"]["depends_on"][FAKE.name] = {"condition": "service_healthy"}
    doc["volumes"][f"models-{FAKE.name}"] = None
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def follow_dockerfile(path: Path) -> None:
    text = path.read_text()
    stage = re.search(rf"^FROM app-ml AS {MODEL}\n.*?(?=^FROM |\Z)", text, re.M | re.S)
    assert stage is not None
    text = text.replace(f"{MODEL} energy-anomaly; do", f"{MODEL} energy-anomaly {FAKE.name}; do")
    path.write_text(text.rstrip("\n") + "\n\n" + _renamed(stage.group(0)))


def follow_kubernetes(directory: Path) -> None:
    base = directory / "base"
    (base / f"{FAKE.name}.yaml").write_text(_renamed((base / f"{MODEL}.yaml").read_text()))
    for folder in [base, *sorted((directory / "overlays").iterdir())]:
        path = folder / "kustomization.yaml"
        doc = yaml.safe_load(path.read_text())
        if folder == base:
            doc["resources"].append(f"{FAKE.name}.yaml")
        doc["images"].append({"name": f"vigie/{FAKE.name}", "newTag": "0.1.0"})
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    policies = base / "networkpolicies.yaml"
    docs = [d for d in yaml.safe_load_all(policies.read_text()) if d]
    by_name = {d["metadata"]["name"]: d for d in docs}
    by_name["gateway"]["spec"]["egress"].append(
        _renamed(next(
            rule for rule in by_name["gateway"]["spec"]["egress"]
            if rule["ports"][0]["port"] == MODEL_PORT
        ))
    )  # fmt: skip
    docs.append(_renamed(by_name[MODEL]))
    policies.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _copy_repo_files(root: Path) -> Path:
    for name in ("docker-compose.yml", "Dockerfile", "Procfile"):
        shutil.copy(REPO_ROOT / name, root / name)
    shutil.copytree(KUBE, root / "deploy" / "kubernetes", ignore=shutil.ignore_patterns("secrets"))
    shutil.copytree(PROM, root / "deploy" / "prometheus")
    return root


# -- the checks -----------------------------------------------------------------------------------

Check = Callable[[Registry, Path], list[str]]
CHECKS: dict[str, tuple[Check, str, Callable[[Path], None]]] = {
    "compose": (check_compose, "docker-compose.yml", follow_compose),
    "dockerfile": (check_dockerfile, "Dockerfile", follow_dockerfile),
    "kubernetes": (check_kubernetes, "deploy/kubernetes", follow_kubernetes),
    "procfile": (
        check_procfile,
        "Procfile",
        lambda path: path.write_text(procfile.render(GROWN)),
    ),
    "prometheus": (
        check_prometheus,
        "deploy/prometheus/prometheus.yml",
        lambda path: path.write_text(prometheus.compose_config(GROWN)),
    ),
}


def test_the_committed_files_agree_with_the_registry() -> None:
    found = check_all()  # the installed registry, the repository's files
    assert len(found) == 6
    assert {rel: problems for rel, problems in found.items() if problems} == {}


@pytest.mark.parametrize("name", list(CHECKS))
def test_a_new_piece_fails_the_check_until_the_file_follows(name: str, tmp_path: Path) -> None:
    check, rel, follow = CHECKS[name]
    root = _copy_repo_files(tmp_path)
    path = root / rel
    assert check(REGISTRY, path) == []
    problems = check(GROWN, path)
    assert problems, f"{rel} does not list {FAKE.name}, yet its check passes"
    assert all(FAKE.name in p or "is not what the registry generates" in p for p in problems)
    assert any(f"piece {FAKE.name!r}" in p for p in problems), problems
    follow(path)
    assert check(GROWN, path) == [], f"{rel} follows {FAKE.name} now"


def test_prometheus_on_kubernetes_finds_the_new_piece_once_its_manifests_exist(
    tmp_path: Path,
) -> None:
    root = _copy_repo_files(tmp_path)
    config = root / "deploy" / "prometheus" / "prometheus-kubernetes.yml"
    base = root / "deploy" / "kubernetes" / "base"
    assert check_prometheus_kubernetes(REGISTRY, config, base) == []
    problems = check_prometheus_kubernetes(GROWN, config, base)
    assert problems == [
        f"prometheus-kubernetes.yml: piece {FAKE.name!r}: 0 targets from its pods, not one"
    ]
    follow_kubernetes(root / "deploy" / "kubernetes")
    assert check_prometheus_kubernetes(GROWN, config, base) == []


def test_check_all_names_the_new_piece_in_every_file(tmp_path: Path) -> None:
    root = _copy_repo_files(tmp_path)
    found = check_all(GROWN, root)
    assert set(found) == {
        *(rel for _, rel, _ in CHECKS.values()),
        "deploy/prometheus/prometheus-kubernetes.yml",
    }
    for rel, problems in found.items():
        assert any(f"piece {FAKE.name!r}" in p for p in problems), rel
    for _, rel, follow in CHECKS.values():
        follow(root / rel)
    assert {rel: p for rel, p in check_all(GROWN, root).items() if p} == {}


@pytest.mark.parametrize(
    ("change", "file", "why"),
    [
        ({"port": 8199}, "docker-compose.yml", "expose ['8104'], not [8199]"),
        ({"port": 8199}, "Dockerfile", "EXPOSE 8104, not 8199"),
        ({"port": 8199}, "deploy/kubernetes", "container ports [8104], not [8199]"),
        ({"port": 8199}, "deploy/prometheus/prometheus.yml", "not scraped at turbine-nox:8199"),
        (
            {"port": 8199},
            "deploy/prometheus/prometheus-kubernetes.yml",
            "scraped at 10.0.0.7:8104, not port 8199",
        ),
        ({"service_class": "vigie_services.nox.service:Nox"}, "Dockerfile", "(vigie_services/nox)"),
    ],
)
def test_a_changed_declaration_is_caught_too(change: dict[str, Any], file: str, why: str) -> None:
    found = check_all(REGISTRY.replacing(MODEL, **change))
    assert any(why in p for p in found[file]), found[file]


def test_a_removed_piece_leaves_files_that_serve_what_is_no_piece() -> None:
    found = check_all(REGISTRY.without(MODEL))
    assert any(f"builds {MODEL!r}, which is no piece" in p for p in found["docker-compose.yml"])
    assert any(f"serves {MODEL!r}, no piece" in p for p in found["Dockerfile"])
    assert any(f"serves {MODEL!r}, no piece" in p for p in found["deploy/kubernetes"])
    assert any(
        f"scrapes {MODEL!r}, which is no piece" in p
        for p in found["deploy/prometheus/prometheus.yml"]
    )


def test_one_process_pieces_are_checked_on_kubernetes() -> None:
    from vigie.ops.registry import Workers

    found = check_all(REGISTRY.replacing(MODEL, workers=Workers.ONE))["deploy/kubernetes"]
    assert any("replicas must be 1" in p for p in found), found
    assert any("strategy must be Recreate" in p for p in found)
    assert any("yet autoscaled" in p for p in found)


def test_a_platform_piece_needs_no_model() -> None:
    audit = Piece(name="audit", port=18300, app="vigie_services.audit.app:create_app()")
    problems = check_dockerfile(REGISTRY.with_piece(audit), REPO_ROOT / "Dockerfile")
    assert problems == ["Dockerfile: piece 'audit': no target (stage) named after it"]
