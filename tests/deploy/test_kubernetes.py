"""deploy/kubernetes: the kustomize base and the production overlay render, every document is
valid for the Kubernetes API, and the manifests say what design.md and the brief say.

Rendering needs ``kubectl`` (its built-in ``kubectl kustomize``) or a standalone ``kustomize``;
schema validation needs the ``kubernetes-validate`` package. Without them the tests skip, except
under CI (``CI`` set), where a skip would hide that the manifests are not checked: there they fail.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from tests.conftest import REPO_ROOT, _under_ci
from vigie.ops.artifacts.kubernetes import matches
from vigie.ops.registry import Workers, load

KUBE_DIR = REPO_ROOT / "deploy" / "kubernetes"
BASE = KUBE_DIR / "base"
PRODUCTION = KUBE_DIR / "overlays" / "production"
PRODUCTION_NAMESPACE = "vigie"
# Schemas the objects must satisfy: 1.25, the oldest release README.md supports (policy/v1,
# autoscaling/v2, Pod Security labels), and 1.29 (kubernetes-validate ships 1.25 onwards).
K8S_VERSIONS = ("1.25.0", "1.29.0")

GATEWAY_PORT = 8080  # design.md section 1: the gateway's http port, its /healthz
# What must be writable under a read-only root: VIGIE_VAR_DIR (outbox, Prometheus files) and
# /tmp for the Python pieces; nginx's prefix and its temp files for the gateway (Dockerfile).
WRITABLE = {"gateway": ("/var/lib/vigie-gateway", "/var/lib/vigie-gateway/tmp")}
PYTHON_WRITABLE = ("/var/lib/vigie", "/tmp")
REGISTRY = load()  # the pieces: auth, alerting, the prediction services
PREDICTION_PIECES = REGISTRY.prediction_names
PYTHON_PIECES: dict[str, int] = REGISTRY.ports
ALL_PIECES: dict[str, int] = {**PYTHON_PIECES, "gateway": GATEWAY_PORT}
AUTOSCALED = frozenset({*PREDICTION_PIECES, "gateway"})

# Cluster-scoped kinds rendered here: every other object must land in the production namespace.
CLUSTER_SCOPED = frozenset({"Namespace"})
# What the manifests may use of a kustomization: the fields every kustomize from v2 (kubectl
# 1.14+, e.g. Debian's kubernetes-client) to v5 understands.
KUSTOMIZATION_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "namespace",
        "resources",
        "bases",
        "patchesStrategicMerge",
        "configMapGenerator",
        "secretGenerator",
        "generatorOptions",
        "images",
        "commonLabels",
        "commonAnnotations",
    }
)
# Test-only values for the production overlay's env files (the real ones are never in git).
SECRET_ENV_FILES: dict[str, dict[str, str]] = {
    "secrets/database.env": {
        "auth": "postgresql+psycopg://vigie_auth:test-only@db.test:5432/vigie_auth",
        "alerting": "postgresql+psycopg://vigie_alerting:test-only@db.test:5432/vigie_alerting",
        "predictions": "postgresql+psycopg://vigie_predictions:test-only@db.test:5432/p",
    },
    "secrets/alerting.env": {
        "VIGIE_WEBHOOK_SECRET": "test-only",
        "VIGIE_SMTP_PASSWORD": "test-only",
    },
}
PRIVATE_KEY_WITH_BODY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{32,}", re.MULTILINE
)

Doc = dict[str, Any]


# -- tools ---------------------------------------------------------------------------------------


def _missing(reason: str) -> NoReturn:
    """Skip for ``reason``; under CI, fail instead: unchecked manifests must not pass."""
    if _under_ci():
        pytest.fail(
            f"{reason} (CI is set: the Kubernetes manifests must be checked)", pytrace=False
        )
    pytest.skip(reason)


def _kustomize_command() -> list[str]:
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    _missing(
        "neither kubectl nor kustomize is installed: apt-get install kubernetes-client "
        "(or any kubectl >= 1.14) to render deploy/kubernetes"
    )


def _render(directory: Path) -> list[Doc]:
    done = subprocess.run(
        [*_kustomize_command(), str(directory)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"kustomize {directory} failed:\n{done.stderr}"
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert docs, f"kustomize {directory} rendered nothing"
    return docs


def _validator() -> Callable[[Doc], None]:
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError:
        _missing("kubernetes-validate is not installed: pip install kubernetes-validate")

    def validate(doc: Doc) -> None:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)

    return validate


def _yaml_files() -> list[Path]:
    """Every YAML file under deploy/kubernetes, except the git-ignored real secrets."""
    secrets = PRODUCTION / "secrets"
    return sorted(
        p
        for p in KUBE_DIR.rglob("*")
        if p.suffix in (".yaml", ".yml") and p.is_file() and secrets not in p.parents
    )


def _kustomization(directory: Path) -> Doc:
    doc = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def _generator_files(entry: Doc) -> list[str]:
    """The files a configMapGenerator/secretGenerator entry reads, relative to its directory."""
    paths = [f.split("=", 1)[-1] for f in entry.get("files", [])]
    env = entry.get("env")
    return paths + ([env] if env else []) + list(entry.get("envs", []))


def _fill_production_secrets(directory: Path) -> None:
    """Test-only stand-ins for the files of the production overlay's secretGenerator."""
    for entry in _kustomization(directory).get("secretGenerator", []):
        for rel in _generator_files(entry):
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if rel in SECRET_ENV_FILES:
                path.write_text("".join(f"{k}={v}\n" for k, v in SECRET_ENV_FILES[rel].items()))
            elif rel.endswith(".json"):
                path.write_text('{"keys": []}\n')
            else:
                path.write_text(f"test-only stand-in for {rel}\n")


# -- rendered objects ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_docs() -> list[Doc]:
    return _render(BASE)


@pytest.fixture(scope="module")
def production_docs(tmp_path_factory: pytest.TempPathFactory) -> list[Doc]:
    # A copy of deploy/kubernetes without the operator's real secrets, with stand-ins instead.
    copy = tmp_path_factory.mktemp("kubernetes") / "kubernetes"
    shutil.copytree(KUBE_DIR, copy, ignore=shutil.ignore_patterns("secrets"))
    overlay = copy / PRODUCTION.relative_to(KUBE_DIR)
    _fill_production_secrets(overlay)
    return _render(overlay)


@pytest.fixture(params=["base", "production"])
def docs(request: pytest.FixtureRequest) -> list[Doc]:
    return list(request.getfixturevalue(f"{request.param}_docs"))


def _of_kind(docs: Iterable[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _one(docs: Iterable[Doc], kind: str, name: str) -> Doc:
    found = _of_kind(docs, kind)
    assert name in found, f"no {kind} {name!r}; there are {sorted(found)}"
    return found[name]


def _pod_spec(deployment: Doc) -> Doc:
    return dict(deployment["spec"]["template"]["spec"])


def _container(deployment: Doc) -> Doc:
    containers = _pod_spec(deployment)["containers"]
    name = deployment["metadata"]["name"]
    matching = [c for c in containers if c["name"] == name]
    assert matching, f"{name}: no container named after the piece"
    return dict(matching[0])


def _pod_labels(deployment: Doc) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def _container_port(container: Doc, port: int | str) -> int:
    """A probe's or Service's target port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"{container['name']}: no container port named {port!r}"
    return int(named[port])


CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
MEMORY_UNITS = {
    None: 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def _cpu(value: str | int | float) -> float:
    m = CPU.match(str(value))
    assert m, f"unexpected CPU quantity {value!r}"
    return float(m.group(1)) / (1000 if m.group(2) else 1)


def _memory(value: str | int) -> int:
    m = MEMORY.match(str(value))
    assert m, f"unexpected memory quantity {value!r}"
    return int(m.group(1)) * MEMORY_UNITS[m.group(2)]


# -- rendering and schemas -----------------------------------------------------------------------


def test_base_renders_every_piece_and_its_objects(base_docs: list[Doc]) -> None:
    kinds = [d["kind"] for d in base_docs]
    assert set(_of_kind(base_docs, "Deployment")) == set(ALL_PIECES)
    assert set(_of_kind(base_docs, "Service")) == set(ALL_PIECES)
    assert set(_of_kind(base_docs, "PodDisruptionBudget")) == set(ALL_PIECES)
    assert set(_of_kind(base_docs, "HorizontalPodAutoscaler")) == AUTOSCALED
    assert kinds.count("Ingress") == 1
    assert kinds.count("ConfigMap") >= 1 and kinds.count("Secret") >= 1
    assert kinds.count("NetworkPolicy") >= 2


def test_every_rendered_document_is_valid(docs: list[Doc]) -> None:
    validate = _validator()
    for doc in docs:
        try:
            validate(doc)
        except Exception as exc:  # the validator's error names the field
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc}", pytrace=False)


def test_every_manifest_file_is_valid_or_a_patch_of_an_existing_object(
    base_docs: list[Doc],
) -> None:
    """Files listed as resources are whole objects: schema-valid as they are (strict: no unknown
    field). Patches are partial objects: each must name an object the base renders (their fields
    are checked in the rendered output, strictly, by the test above). A YAML file that no
    kustomization lists is an error: it would look deployed and never be."""
    validate = _validator()
    known = {(d["kind"], d["metadata"]["name"]) for d in base_docs}
    resources: set[Path] = set()
    patches: set[Path] = set()
    kustomizations = sorted(KUBE_DIR.rglob("kustomization.yaml"))
    assert {k.parent for k in kustomizations} >= {BASE, PRODUCTION}
    for path in kustomizations:
        k = _kustomization(path.parent)
        assert k.get("kind") == "Kustomization", path
        unknown = set(k) - KUSTOMIZATION_FIELDS
        assert not unknown, f"{path}: fields not understood by older kustomize: {unknown}"
        for entry in k.get("resources", []):
            target = (path.parent / entry).resolve()
            assert target.is_file(), f"{path}: resources lists {entry} (directories go in bases)"
            resources.add(target)
        for entry in k.get("bases", []):
            assert (path.parent / entry / "kustomization.yaml").is_file(), f"{path}: {entry}"
        for entry in k.get("patchesStrategicMerge", []):
            target = (path.parent / entry).resolve()
            assert target.is_file(), f"{path}: no patch file {entry}"
            patches.add(target)
    for path in _yaml_files():
        if path.name == "kustomization.yaml":
            continue
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs, f"{path}: empty"
        rel = path.relative_to(REPO_ROOT)
        if path.resolve() in resources:
            for doc in docs:
                try:
                    validate(doc)
                except Exception as exc:
                    pytest.fail(f"{rel}: {doc.get('kind')}: {exc}", pytrace=False)
        elif path.resolve() in patches:
            for doc in docs:
                assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{rel}: {doc}"
                ref = (doc["kind"], doc["metadata"]["name"])
                assert ref in known, f"{rel}: patches {ref}, which the base does not define"
        else:
            pytest.fail(f"{rel}: listed by no kustomization.yaml", pytrace=False)


# -- each piece ----------------------------------------------------------------------------------


@pytest.mark.parametrize("piece", list(ALL_PIECES))
def test_each_piece_has_a_deployment_and_service_on_its_design_port(
    docs: list[Doc], piece: str
) -> None:
    port = ALL_PIECES[piece]
    deployment = _one(docs, "Deployment", piece)
    container = _container(deployment)
    assert port in [p["containerPort"] for p in container["ports"]], container["ports"]
    assert matches(deployment["spec"]["selector"], _pod_labels(deployment))

    service = _one(docs, "Service", piece)
    assert matches({"matchLabels": service["spec"]["selector"]}, _pod_labels(deployment))
    sports = service["spec"]["ports"]
    assert [p["port"] for p in sports] == [port], sports
    assert _container_port(container, sports[0]["targetPort"]) == port

    if piece in PYTHON_PIECES:
        # `vigie serve <piece>` on every address, on the design.md port.
        command = [*container.get("command", []), *container.get("args", [])]
        assert command[:3] == ["vigie", "serve", piece], command
        assert command[command.index("--port") + 1] == str(port), command
        assert command[command.index("--host") + 1] == "0.0.0.0", command


@pytest.mark.parametrize("piece", list(ALL_PIECES))
def test_each_piece_has_probes_resources_and_a_locked_down_container(
    docs: list[Doc], piece: str
) -> None:
    port = ALL_PIECES[piece]
    deployment = _one(docs, "Deployment", piece)
    pod, container = _pod_spec(deployment), _container(deployment)

    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz"
    assert readiness["path"] == ("/healthz" if piece == "gateway" else "/readyz")
    for probe in (readiness, liveness):
        assert _container_port(container, probe["port"]) == port

    resources = container["resources"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{piece}: {part} {resources}"
    assert _cpu(resources["requests"]["cpu"]) <= _cpu(resources["limits"]["cpu"])
    assert _memory(resources["requests"]["memory"]) <= _memory(resources["limits"]["memory"])

    pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
    assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True
    assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert sc["readOnlyRootFilesystem"] is True
    assert (sc.get("seccompProfile") or pod_sc.get("seccompProfile")) == {"type": "RuntimeDefault"}
    assert pod.get("automountServiceAccountToken") is False
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    for path in WRITABLE.get(piece, PYTHON_WRITABLE):
        assert path in mounts and "emptyDir" in volumes[mounts[path]], f"{piece}: {path}"

    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    if piece in PYTHON_PIECES:
        assert annotations.get("prometheus.io/scrape") == "true"
        assert annotations.get("prometheus.io/port") == str(port)
        assert annotations.get("prometheus.io/path") == "/metrics"


def test_python_pieces_share_settings_and_log_json(docs: list[Doc]) -> None:
    configs = _of_kind(docs, "ConfigMap")
    for piece in PYTHON_PIECES:
        container = _container(_one(docs, "Deployment", piece))
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef")
            if ref:
                env.update(configs[ref["name"]]["data"])
        env.update({e["name"]: e.get("value", "<from>") for e in container.get("env", [])})
        assert env["VIGIE_LOG_FORMAT"] == "json"
        assert env["VIGIE_VAR_DIR"] == "/var/lib/vigie"
        assert env["VIGIE_REDIS_URL"].startswith(("redis://", "rediss://"))
        assert int(env["VIGIE_WORKERS"]) >= 1
        assert "VIGIE_DATABASE_URL" in env  # from the Secret, never a ConfigMap
        for cm in configs.values():
            assert "VIGIE_DATABASE_URL" not in cm.get("data", {})
        # The JWKS verifiers trust is mounted where VIGIE_JWT_PUBLIC_KEYS says.
        jwks = Path(env["VIGIE_JWT_PUBLIC_KEYS"])
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert str(jwks.parent) in mounts, f"{piece}: {jwks} not mounted"


def test_references_to_configmaps_and_secrets_resolve(docs: list[Doc]) -> None:
    configs, secrets = _of_kind(docs, "ConfigMap"), _of_kind(docs, "Secret")

    def keys(obj: Doc) -> set[str]:
        return set(obj.get("data") or {}) | set(obj.get("stringData") or {})

    for name, deployment in _of_kind(docs, "Deployment").items():
        pod = _pod_spec(deployment)
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                for kind, pool in (("configMapRef", configs), ("secretRef", secrets)):
                    ref = source.get(kind)
                    if ref and not ref.get("optional"):
                        assert ref["name"] in pool, f"{name}: {kind} {ref['name']} missing"
            for var in container.get("env", []):
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    assert ref["name"] in secrets, f"{name}: secret {ref['name']} missing"
                    assert ref["key"] in keys(secrets[ref["name"]]), f"{name}: {ref}"
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, f"{name}: {volume}"


# -- alerting, autoscaling, disruptions ----------------------------------------------------------


def test_alerting_is_one_consumer_without_autoscaling(docs: list[Doc]) -> None:
    single = [p.name for p in REGISTRY if p.workers is Workers.ONE]
    assert single == ["alerting"]
    targets = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in _of_kind(docs, "HorizontalPodAutoscaler").values()
    }
    for name in single:  # rendered, base and production: what the registry says of them
        deployment = _one(docs, "Deployment", name)
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        assert name not in targets


def test_hpas_target_existing_deployments_on_cpu(docs: list[Doc]) -> None:
    deployments = _of_kind(docs, "Deployment")
    hpas = _of_kind(docs, "HorizontalPodAutoscaler")
    targets = set()
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["apiVersion"], ref["kind"]) == ("apps/v1", "Deployment"), name
        assert ref["name"] in deployments, f"HPA {name} targets a missing {ref['name']}"
        targets.add(ref["name"])
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        metrics = hpa["spec"]["metrics"]
        assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics)
        # The HPA owns the count: a fixed `replicas` would be reset on every apply.
        assert "replicas" not in deployments[ref["name"]]["spec"], ref["name"]
    assert targets == AUTOSCALED


def test_pdb_selectors_match_exactly_their_piece(docs: list[Doc]) -> None:
    deployments = _of_kind(docs, "Deployment")
    for name, pdb in _of_kind(docs, "PodDisruptionBudget").items():
        selector = pdb["spec"]["selector"]
        matched = [d for d, dep in deployments.items() if matches(selector, _pod_labels(dep))]
        assert matched == [name], f"PDB {name} selects {matched}"
        # A single replica must stay drainable: minAvailable 1 would block node drains.
        if name == "alerting":
            assert pdb["spec"].get("maxUnavailable", 0) >= 1 or pdb["spec"].get("minAvailable") == 0


# -- network policies ----------------------------------------------------------------------------


def _policies_for(docs: list[Doc], labels: dict[str, str], direction: str) -> list[Doc]:
    return [
        p
        for p in _of_kind(docs, "NetworkPolicy").values()
        if matches(p["spec"]["podSelector"], labels)
        and direction in p["spec"].get("policyTypes", ["Ingress"])
    ]


def _rules(policies: list[Doc], field: str) -> Iterator[Doc]:
    for policy in policies:
        yield from policy["spec"].get(field) or []


def _ports(rule: Doc) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports") or []}


def _namespace_name(peer: Doc) -> str | None:
    labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
    return labels.get("kubernetes.io/metadata.name")


def test_default_deny_covers_every_pod(docs: list[Doc]) -> None:
    denies = [
        p
        for p in _of_kind(docs, "NetworkPolicy").values()
        if p["spec"]["podSelector"] == {}
        and {"Ingress", "Egress"} <= set(p["spec"]["policyTypes"])
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert denies, "no default-deny NetworkPolicy (podSelector {} and no rules)"


@pytest.mark.parametrize("piece", list(PYTHON_PIECES))
def test_only_the_gateway_and_prometheus_reach_a_piece(docs: list[Doc], piece: str) -> None:
    port = PYTHON_PIECES[piece]
    deployments = _of_kind(docs, "Deployment")
    labels = _pod_labels(deployments[piece])
    gateway_labels = _pod_labels(deployments["gateway"])
    gateway_allowed = prometheus_allowed = False
    for rule in _rules(_policies_for(docs, labels, "Ingress"), "ingress"):
        peers = rule.get("from") or []
        assert peers, f"{piece}: an ingress rule without `from` lets every pod in"
        assert _ports(rule) == {("TCP", port)}, f"{piece}: {rule}"
        for peer in peers:
            assert "ipBlock" not in peer, f"{piece}: {peer}"
            if "namespaceSelector" in peer:
                # Prometheus's namespace, for /metrics (a policy cannot filter by path).
                assert _namespace_name(peer) == "monitoring", f"{piece}: {peer}"
                assert "podSelector" not in peer or peer["podSelector"] == {}
                prometheus_allowed = True
                continue
            # Same namespace: the gateway's pods, and no other piece's.
            selected = [
                n for n, d in deployments.items() if matches(peer["podSelector"], _pod_labels(d))
            ]
            assert selected == ["gateway"], f"{piece}: {peer} selects {selected}"
            assert matches(peer["podSelector"], gateway_labels)
            gateway_allowed = True
    assert gateway_allowed, f"nothing lets the gateway reach {piece}:{port}"
    assert prometheus_allowed, f"nothing lets Prometheus scrape {piece}:{port}"


def test_gateway_is_reached_by_the_ingress_controller_and_reaches_every_piece(
    docs: list[Doc],
) -> None:
    deployments = _of_kind(docs, "Deployment")
    gateway = _pod_labels(deployments["gateway"])
    ingress_rules = list(_rules(_policies_for(docs, gateway, "Ingress"), "ingress"))
    assert ingress_rules
    for rule in ingress_rules:
        assert _ports(rule) == {("TCP", GATEWAY_PORT)}, rule
        assert [_namespace_name(p) for p in rule["from"]] == ["ingress-nginx"], rule
    egress = list(_rules(_policies_for(docs, gateway, "Egress"), "egress"))
    for piece, port in PYTHON_PIECES.items():
        labels = _pod_labels(deployments[piece])
        assert any(
            ("TCP", port) in _ports(rule)
            and any(matches(p.get("podSelector"), labels) for p in rule.get("to") or [])
            for rule in egress
        ), f"the gateway may not reach {piece}:{port}"


def _egress_ports(docs: list[Doc], piece: str) -> set[tuple[str, int]]:
    labels = _pod_labels(_one(docs, "Deployment", piece))
    out: set[tuple[str, int]] = set()
    for rule in _rules(_policies_for(docs, labels, "Egress"), "egress"):
        out |= _ports(rule)
    return out


@pytest.mark.parametrize("piece", list(PYTHON_PIECES))
def test_pieces_reach_dns_redis_and_postgresql(docs: list[Doc], piece: str) -> None:
    ports = _egress_ports(docs, piece)
    assert {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 5432)} <= ports, ports
    if piece == "alerting":  # SMTP, and HTTPS for webhooks, ntfy, the SMS gateway
        assert {("TCP", 587), ("TCP", 443)} <= ports, ports
    else:
        assert ("TCP", 443) not in ports and ("TCP", 587) not in ports, f"{piece}: {ports}"


# -- ingress and secrets -------------------------------------------------------------------------


def test_ingress_points_at_the_gateway_service_with_tls(docs: list[Doc]) -> None:
    services, secrets = _of_kind(docs, "Service"), _of_kind(docs, "Secret")
    (ingress,) = _of_kind(docs, "Ingress").values()
    hosts = set()
    for rule in ingress["spec"]["rules"]:
        hosts.add(rule["host"])
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "gateway"
            ports = services["gateway"]["spec"]["ports"]
            wanted = backend["port"]
            assert any(
                p.get("name") == wanted.get("name") or p["port"] == wanted.get("number")
                for p in ports
            )
    (tls,) = ingress["spec"]["tls"]
    assert set(tls["hosts"]) == hosts
    assert secrets[tls["secretName"]]["type"] == "kubernetes.io/tls"
    # The gateway's 8443 listener reads the same certificate where its nginx.conf says.
    gateway = _one(docs, "Deployment", "gateway")
    volumes = {v["name"]: v for v in _pod_spec(gateway).get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in _container(gateway)["volumeMounts"]}
    mounted = volumes[mounts["/run/secrets"]]["secret"]
    assert mounted["secretName"] == tls["secretName"]
    assert {(i["key"], i["path"]) for i in mounted["items"]} == {
        ("tls.crt", "gateway.crt"),
        ("tls.key", "gateway.key"),
    }


def _secret_texts(secret: Doc) -> Iterator[tuple[str, str]]:
    for key, value in (secret.get("data") or {}).items():
        yield key, base64.b64decode(value).decode("utf-8", errors="replace")
    for key, value in (secret.get("stringData") or {}).items():
        yield key, str(value)


def test_base_secrets_hold_placeholders_only(base_docs: list[Doc]) -> None:
    secrets = _of_kind(base_docs, "Secret")
    assert secrets
    for name, secret in secrets.items():
        for key, text in _secret_texts(secret):
            assert not PRIVATE_KEY_WITH_BODY.search(text), f"{name}/{key} holds a private key"
            assert '"d"' not in text, f"{name}/{key}: a JWK with a private exponent"
            if key.endswith(".json"):  # a JWKS: public keys only, and none in the base
                assert json.loads(text) == {"keys": []}, f"{name}/{key}"
            else:  # keys, certificates, passwords, database URLs
                assert "REPLACE-ME" in text, f"{name}/{key} is not a placeholder"
    # The files themselves too (a key pasted in a comment would be committed all the same).
    for path in _yaml_files():
        assert not PRIVATE_KEY_WITH_BODY.search(path.read_text()), path


def test_production_replaces_every_placeholder(production_docs: list[Doc]) -> None:
    for name, secret in _of_kind(production_docs, "Secret").items():
        for key, text in _secret_texts(secret):
            assert "REPLACE-ME" not in text, f"{name}/{key} still the base's placeholder"


def test_production_secret_files_are_ignored_by_git() -> None:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git work tree")
    paths = [
        str((PRODUCTION / rel).relative_to(REPO_ROOT))
        for entry in _kustomization(PRODUCTION).get("secretGenerator", [])
        for rel in _generator_files(entry)
    ]
    assert paths and all(
        p.startswith("deploy/kubernetes/overlays/production/secrets/") for p in paths
    )
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sorted(done.stdout.split()) == sorted(paths), (
        f"not ignored: {set(paths) - set(done.stdout.split())}"
    )


# -- production overlay --------------------------------------------------------------------------


def test_production_puts_every_object_in_its_namespace(production_docs: list[Doc]) -> None:
    namespaces = _of_kind(production_docs, "Namespace")
    assert set(namespaces) == {PRODUCTION_NAMESPACE}
    labels = namespaces[PRODUCTION_NAMESPACE]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in production_docs:
        if doc["kind"] in CLUSTER_SCOPED:
            continue
        where = doc["metadata"].get("namespace")
        assert where == PRODUCTION_NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']}: {where}"


def _image_tag(image: str) -> str | None:
    if "@sha256:" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def test_production_pins_every_image(production_docs: list[Doc]) -> None:
    for name, deployment in _of_kind(production_docs, "Deployment").items():
        for container in _pod_spec(deployment)["containers"]:
            image = container["image"]
            assert image.split("@")[0].rsplit(":", 1)[0].endswith(f"vigie/{name}"), image
            tag = _image_tag(image)
            assert tag and tag != "latest", f"{name}: {image} is not pinned"


def test_production_scales_up_and_spreads(base_docs: list[Doc], production_docs: list[Doc]) -> None:
    base_d, prod_d = _of_kind(base_docs, "Deployment"), _of_kind(production_docs, "Deployment")
    for piece in ALL_PIECES:
        base_r, prod_r = (
            _container(base_d[piece])["resources"],
            _container(prod_d[piece])["resources"],
        )
        assert _cpu(prod_r["requests"]["cpu"]) > _cpu(base_r["requests"]["cpu"]), piece
        assert _memory(prod_r["limits"]["memory"]) >= _memory(base_r["limits"]["memory"]), piece
    hpas = _of_kind(production_docs, "HorizontalPodAutoscaler")
    base_hpas = _of_kind(base_docs, "HorizontalPodAutoscaler")
    for name in AUTOSCALED:
        assert hpas[name]["spec"]["minReplicas"] >= 2, name
        assert hpas[name]["spec"]["maxReplicas"] > base_hpas[name]["spec"]["maxReplicas"], name
    assert prod_d["auth"]["spec"]["replicas"] >= 2
    assert prod_d["alerting"]["spec"]["replicas"] == 1
    for piece in PREDICTION_PIECES:
        pod = _pod_spec(prod_d[piece])
        labels = _pod_labels(prod_d[piece])
        spread = [
            c
            for c in pod.get("topologySpreadConstraints", [])
            if c["topologyKey"] == "kubernetes.io/hostname" and matches(c["labelSelector"], labels)
        ]
        anti = (pod.get("affinity") or {}).get("podAntiAffinity")
        assert spread or anti, f"{piece}: replicas may all land on one node"


def test_production_sets_its_own_host(base_docs: list[Doc], production_docs: list[Doc]) -> None:
    (base_ing,) = _of_kind(base_docs, "Ingress").values()
    (prod_ing,) = _of_kind(production_docs, "Ingress").values()
    base_hosts = {r["host"] for r in base_ing["spec"]["rules"]}
    prod_hosts = {r["host"] for r in prod_ing["spec"]["rules"]}
    assert prod_hosts and not prod_hosts & base_hosts
