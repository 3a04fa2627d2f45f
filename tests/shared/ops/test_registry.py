"""The registry of pieces (vigie.ops.registry): declarations, lookups, and how the runtime finds
them (the ``vigie.pieces`` entry point group), without ever naming the services."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from vigie.ops.registry import (
    ENTRY_POINT_GROUP,
    CliSpec,
    Kind,
    Piece,
    Registry,
    RegistryError,
    UnknownPiece,
    is_importable,
    load,
    prediction_service,
)
from vigie.settings import VigieSettings
from vigie_services.pieces import PIECES

FAKE = prediction_service("fake-piece", 18199, "vigie_services.fake_piece.service:FakeService")
prepared: list[tuple[str, Path]] = []


def record_prepare(piece: Piece, settings: VigieSettings) -> None:
    """A piece's preparation, as a test declares one."""
    prepared.append((piece.name, settings.var_dir))


def test_the_installed_registry_is_what_vigie_services_declares() -> None:
    registry = load()
    assert registry.pieces == PIECES
    assert registry.names == (
        "auth", "alerting", "solar-flare", "gamma-classifier", "transformer-temperature",
        "turbine-nox", "energy-anomaly",
    )  # fmt: skip
    assert registry.ports == {
        "auth": 8090, "alerting": 8100, "solar-flare": 8101, "gamma-classifier": 8102,
        "transformer-temperature": 8103, "turbine-nox": 8104, "energy-anomaly": 8105,
    }  # fmt: skip
    assert registry.prediction_names == registry.names[2:]


def _defines(spec: str) -> bool:
    """Whether the module of ``spec`` exists and defines its first attribute at top level, read
    from its source (importing every service here would test them, not their declarations)."""
    module, _, attribute = spec.partition(":")
    found = importlib.util.find_spec(module)
    if found is None or found.origin is None:
        return False
    tree = ast.parse(Path(found.origin).read_text())
    name = attribute.split(".")[0].partition("(")[0]
    defined = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom):
            defined |= {a.asname or a.name for a in node.names}
    return name in defined


def test_every_declared_spec_names_an_existing_object() -> None:
    for piece in load():
        specs = [piece.app, piece.prepare, piece.service_class, piece.client_store]
        for spec in [*specs, piece.cli.app if piece.cli else None]:
            assert spec is None or _defines(spec), f"{piece.name}: {spec}"
    assert not _defines("vigie_services.auth.piece:no_such_thing")
    assert not _defines("vigie_services.no_such_piece:prepare")


def test_a_service_class_is_loaded_from_its_declaration() -> None:
    from vigie.contract.service import PredictionService

    cls = load().service_class("turbine-nox")
    assert issubclass(cls, PredictionService) and cls.name == "turbine-nox"


def test_prediction_services_get_the_runtime_s_app_scopes_and_preparation() -> None:
    assert FAKE.kind is Kind.PREDICTION and FAKE.is_prediction
    assert FAKE.app == 'vigie.serve.app:app_for("fake-piece")'
    assert FAKE.prepare == "vigie.ops.prepare:prediction_service"
    assert FAKE.scopes == ("predict:fake-piece", "feedback:fake-piece", "models:admin")
    assert FAKE.prefix == "/fake-piece/" and FAKE.code_package == "vigie_services.fake_piece"
    assert load().get("auth").code_package == "vigie_services.auth"


def test_workers_policy() -> None:
    assert load().get("alerting").workers_for(8) == 1
    assert load().get("auth").workers_for(8) == 8 and FAKE.workers_for(3) == 3


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"name": "Turbine_NOx"}, "lowercase words"),
        ({"port": 0}, "not in 1-65535"),
        ({"port": "8104"}, "not a number"),
        ({"prefix": "/a/b/"}, "one path segment"),
        ({"prefix": "x"}, "one path segment"),
        ({"app": "not a spec"}, "gunicorn app"),
        ({"scopes": ("predict",)}, "'kind:target'"),
        ({"prepare": "no_colon"}, "'module:attribute'"),
        ({"cli": CliSpec("Bad Name", "m:app")}, "cli name"),
        ({"kind": Kind.PREDICTION}, "a prediction service has a service_class"),
        ({"service_class": "m:Cls"}, "and only a prediction service"),
    ],
)
def test_bad_declarations_are_refused_with_the_reason(fields: dict[str, Any], why: str) -> None:
    declared = {"name": "audit", "port": 18300, "app": "m:create_app()", **fields}
    with pytest.raises(RegistryError, match=why):
        Piece(**declared)


@pytest.mark.parametrize(
    ("other", "why"),
    [
        (prediction_service("turbine-nox", 18999, "m:C"), "same name turbine-nox"),
        (prediction_service("nox-2", 8104, "m:C"), "'turbine-nox' and 'nox-2' have the same port"),
        (prediction_service("nox-3", 18998, "m:C", prefix="/auth/"), "same gateway prefix"),
        (Piece(name="auth2", port=18997, app="m:a()", client_store="m:Store"), "OAuth2 clients"),
    ],
)
def test_a_registry_refuses_clashing_pieces(other: Piece, why: str) -> None:
    with pytest.raises(RegistryError, match=why):
        load().with_piece(other)


def test_lookups_name_what_is_known() -> None:
    registry = load().with_piece(FAKE)
    assert registry.get("fake-piece") is FAKE and "fake-piece" in registry and len(registry) == 8
    assert registry.prediction_names[-1] == "fake-piece"
    assert [p.name for p in registry.platform] == ["auth", "alerting"]
    with pytest.raises(UnknownPiece, match="unknown piece 'nox'; known: auth, alerting, solar"):
        registry.get("nox")
    with pytest.raises(KeyError, match="unknown service 'auth'; known: solar-flare, "):
        registry.service_class("auth")  # a KeyError: what load_service always raised
    assert registry.without("fake-piece") == load()
    moved = registry.replacing("turbine-nox", port=18104)
    assert moved.get("turbine-nox").port == 18104 and moved.names == registry.names


def test_prepare_calls_the_piece_s_own_function(tmp_path: Path) -> None:
    spec = f"{__name__}:record_prepare"
    registry = load().with_piece(Piece(name="audit", port=18300, app="m:a()", prepare=spec))
    prepared.clear()
    registry.prepare("audit", VigieSettings(var_dir=tmp_path))
    assert prepared == [("audit", tmp_path)]


def test_the_client_store_is_the_auth_piece_s(tmp_path: Path) -> None:
    from vigie_services.auth.clients import ClientStore

    store = load().client_store(VigieSettings(var_dir=tmp_path))
    try:
        assert isinstance(store, ClientStore)
    finally:
        store.close()
    with pytest.raises(RegistryError, match="no piece keeps OAuth2 clients"):
        load().without("auth").client_store(VigieSettings(var_dir=tmp_path))


def test_absent_code_is_told_from_broken_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert is_importable("vigie_services.auth.piece:clients_app")
    assert not is_importable("vigie_services.not_in_this_image.piece:app")
    (tmp_path / "broken_piece.py").write_text("import not_a_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="not_a_module_anywhere"):
        is_importable("broken_piece:app")  # its own module is there: the failure is a bug


def test_load_service_and_prediction_services_read_the_registry() -> None:
    import vigie_services
    from vigie_services import load_service

    assert load_service("turbine-nox") is load().service_class("turbine-nox")
    declared = vigie_services.PREDICTION_SERVICES
    assert declared == {p.name: p.service_class for p in load().prediction_services}


# -- entry points ---------------------------------------------------------------------------

_LIST_PIECES = """
import json
from vigie.ops.registry import Registry
print(json.dumps([[p.name, p.port] for p in Registry.from_entry_points()]))
"""


def _distribution(root: Path, name: str, entry: str, module: str, code: str) -> Path:
    """A distribution installed in ``root`` (a folder for PYTHONPATH) with one entry point of the
    ``vigie.pieces`` group, as pip would lay it out."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry}\n")
    (root / f"{module}.py").write_text(code)
    return root


def _pieces_with(path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", _LIST_PIECES], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def test_another_distribution_s_pieces_join_the_registry(tmp_path: Path) -> None:
    code = (
        "from vigie.ops.registry import prediction_service\n"
        "def pieces():\n"
        "    return [prediction_service('extra-one', 18400, 'extra_pieces:Nothing')]\n"
    )
    root = _distribution(tmp_path, "extra", "zz = extra_pieces:pieces", "extra_pieces", code)
    done = _pieces_with(root)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found[-1] == ["extra-one", 18400]  # entry points by name: vigie_services < zz
    assert [n for n, _ in found[:-1]] == list(load().names)


def test_a_clashing_or_malformed_declaration_stops_the_registry(tmp_path: Path) -> None:
    clash = _distribution(
        tmp_path / "clash", "clash", "zz = clash_pieces:PIECE", "clash_pieces",
        "from vigie.ops.registry import Piece\n"
        "PIECE = Piece(name='other', port=8104, app='m:a()')\n",
    )  # fmt: skip
    done = _pieces_with(clash)
    assert done.returncode != 0 and "have the same port 8104" in done.stderr
    junk = _distribution(tmp_path / "junk", "junk", "zz = junk_pieces:X", "junk_pieces", "X = 3\n")
    done = _pieces_with(junk)
    assert done.returncode != 0 and "zz = junk_pieces:X" in done.stderr


def test_no_declared_piece_is_an_error_that_says_how_to_fix_it() -> None:
    with pytest.raises(RegistryError, match="pip install -e"):
        Registry.from_entry_points(group="vigie.no-such-group")


# -- the runtime names no service ---------------------------------------------------------------


def _service_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value] if node.value.startswith("vigie_services") else []
        found += [
            f"{path}:{node.lineno}: {n}" for n in names if n.split(".")[0] == "vigie_services"
        ]
    return found


def test_the_runtime_imports_no_service_by_name() -> None:
    runtime = REPO_ROOT / "shared" / "vigie"
    offending = [line for path in sorted(runtime.rglob("*.py")) for line in _service_imports(path)]
    assert offending == []


def test_the_import_check_sees_an_import() -> None:
    assert _service_imports(REPO_ROOT / "tests" / "shared" / "ops" / "test_registry.py")
