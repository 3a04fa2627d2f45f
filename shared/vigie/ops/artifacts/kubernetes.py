"""``deploy/kubernetes`` and Prometheus's Kubernetes configuration against the registry.

The base's manifests are read as the YAML files its ``kustomization.yaml`` lists (no kustomize
needed; the deploy tests also render them with kustomize and validate them on the API schemas).
Prometheus's pod discovery is replayed here: its relabeling rules turn each pod template into the
target Prometheus would scrape (:func:`relabel`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from vigie.ops.artifacts.problems import Problems, served_piece
from vigie.ops.registry import Piece, Registry, Workers

Doc = dict[str, Any]
GATEWAY = "gateway"
IMAGE = "vigie/{name}"


def kustomization(directory: Path) -> Doc:
    doc = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    return dict(doc)


def base_documents(base: Path) -> list[Doc]:
    """Every object of the files ``base/kustomization.yaml`` lists as resources."""
    docs: list[Doc] = []
    for entry in kustomization(base).get("resources") or []:
        path = base / entry
        if path.is_file():
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict))
    return docs


def of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def matches(selector: Doc | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (an empty selector matches everything)."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _pod_labels(deployment: Doc) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"].get("labels") or {})


def _ports(rule: Doc) -> set[int]:
    return {int(p["port"]) for p in rule.get("ports") or [] if "port" in p}


def _policy_rules(docs: list[Doc], labels: dict[str, str], direction: str) -> Iterator[Doc]:
    """The ingress or egress rules of the NetworkPolicies that select pods with ``labels``."""
    field = direction.lower()
    for policy in of_kind(docs, "NetworkPolicy").values():
        spec = policy.get("spec") or {}
        if matches(spec.get("podSelector"), labels) and direction in spec.get(
            "policyTypes", ["Ingress"]
        ):
            yield from spec.get(field) or []


def _container(deployment: Doc, name: str) -> Doc | None:
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    return next((c for c in containers if c.get("name") == name), None)


def _check_deployment(piece: Piece, deployment: Doc) -> Iterator[str]:
    container = _container(deployment, piece.name)
    if container is None:
        yield "no container named after it"
        return
    ports = [p.get("containerPort") for p in container.get("ports") or []]
    if ports != [piece.port]:
        yield f"container ports {ports}, not [{piece.port}]"
    command = [*container.get("command", []), *container.get("args", [])]
    wanted = ["vigie", "serve", piece.name, "--host", "0.0.0.0", "--port", str(piece.port)]  # noqa: S104
    if command != wanted:
        yield f"command {command}, not {wanted}"
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    if annotations.get("prometheus.io/scrape") != "true":
        yield 'pod not annotated prometheus.io/scrape: "true"'
    if annotations.get("prometheus.io/port") != str(piece.port):
        yield f'pod not annotated prometheus.io/port: "{piece.port}"'
    if piece.workers is Workers.ONE:
        if deployment["spec"].get("replicas") != 1:
            yield "one process only (workers ONE): replicas must be 1"
        if (deployment["spec"].get("strategy") or {}).get("type") != "Recreate":
            yield "one process only (workers ONE): strategy must be Recreate"


def check_kubernetes(registry: Registry, directory: Path) -> list[str]:
    """What ``directory`` (``deploy/kubernetes``) lacks for ``registry``: for each piece, in the
    base, a Deployment (its container runs ``vigie serve <piece>`` on its port, scraped there)
    and a Service on its port, a NetworkPolicy letting the gateway reach it and one letting
    traffic in on its port, its image in the base's and every overlay's ``images``; a piece of
    one process (:attr:`Workers.ONE`) has one replica, ``Recreate`` and no autoscaler. Also a
    Deployment serving a piece the registry does not know."""
    base = directory / "base"
    docs = base_documents(base)
    deployments, services = of_kind(docs, "Deployment"), of_kind(docs, "Service")
    autoscaled = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in of_kind(docs, "HorizontalPodAutoscaler").values()
    }
    kustomizations = {base: kustomization(base)}
    for overlay in sorted((directory / "overlays").glob("*/kustomization.yaml")):
        kustomizations[overlay.parent] = kustomization(overlay.parent)
    gateway = deployments.get(GATEWAY)
    gateway_egress = list(_policy_rules(docs, _pod_labels(gateway), "Egress")) if gateway else []
    problems = Problems(directory.name)
    for piece in registry:
        deployment = deployments.get(piece.name)
        if deployment is None:
            problems.of(piece, f"no Deployment named after it in {base.name}")
        else:
            for problem in _check_deployment(piece, deployment):
                problems.of(piece, f"Deployment: {problem}")
            labels = _pod_labels(deployment)
            if not any(
                piece.port in _ports(rule)
                and any(matches(peer.get("podSelector"), labels) for peer in rule.get("to") or [])
                for rule in gateway_egress
            ):
                problems.of(piece, f"no NetworkPolicy lets the gateway reach {piece.port}")
            if not any(
                piece.port in _ports(rule) for rule in _policy_rules(docs, labels, "Ingress")
            ):
                problems.of(piece, f"no NetworkPolicy lets traffic in on {piece.port}")
            if piece.workers is Workers.ONE and piece.name in autoscaled:
                problems.of(piece, "one process only (workers ONE), yet autoscaled")
        service = services.get(piece.name)
        service_ports = [p.get("port") for p in (service or {}).get("spec", {}).get("ports", [])]
        if service_ports != [piece.port]:
            problems.of(piece, f"no Service on port {piece.port} (found {service_ports})")
        image = IMAGE.format(name=piece.name)
        for folder, doc in kustomizations.items():
            if image not in {i.get("name") for i in doc.get("images") or []}:
                rel = folder.relative_to(directory)
                problems.of(piece, f"{rel}/kustomization.yaml lists no image {image}")
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"].get("containers") or []:
            served = served_piece([*container.get("command", []), *container.get("args", [])])
            if served is not None and served not in registry:
                problems.append(f"{base.name}: Deployment {name!r} serves {served!r}, no piece")
    return problems


# -- Prometheus's discovery of the pods -------------------------------------------------------


def relabel(labels: dict[str, str], configs: list[Doc]) -> dict[str, str] | None:
    """Prometheus's relabeling (keep, drop, replace) of a target's labels; None when dropped."""
    out = dict(labels)
    for cfg in configs:
        sources = cfg.get("source_labels", [])
        value = cfg.get("separator", ";").join(out.get(s, "") for s in sources)
        match = re.compile(f"^(?:{cfg.get('regex', '(.*)')})$").match(value)
        action = cfg.get("action", "replace")
        if action == "keep" and not match:
            return None
        if action == "drop" and match:
            return None
        if action == "replace" and match:
            replacement = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", cfg.get("replacement", "$1"))
            result = match.expand(replacement)
            if result:
                out[cfg["target_label"]] = result
            else:
                out.pop(cfg["target_label"], None)
    return out


def meta(prefix: str, values: dict[str, str]) -> dict[str, str]:
    """Kubernetes labels or annotations as discovery meta labels (non-word characters -> _)."""
    return {f"{prefix}{re.sub(r'[^a-zA-Z0-9_]', '_', k)}": str(v) for k, v in values.items()}


def pod_targets(
    job: Doc, name: str, template: Doc, *, ip: str = "10.0.0.7", namespace: str = "vigie"
) -> list[dict[str, str]]:
    """The targets ``job`` (a ``kubernetes_sd_configs: [{role: pod}]`` scrape job) makes of a
    running pod of ``template``: discovery yields one per declared container port."""
    ports = [p["containerPort"] for c in template["spec"]["containers"]
             for p in c.get("ports") or []]  # fmt: skip
    found = []
    for port in ports or [None]:
        labels = {
            "__address__": ip + (f":{port}" if port else ""),
            "__metrics_path__": job.get("metrics_path", "/metrics"),
            "__meta_kubernetes_namespace": namespace,
            "__meta_kubernetes_pod_name": f"{name}-abc12",
            "__meta_kubernetes_pod_phase": "Running",
            **meta("__meta_kubernetes_pod_label_", template["metadata"].get("labels") or {}),
            **meta("__meta_kubernetes_pod_annotation_",
                   template["metadata"].get("annotations") or {}),
        }  # fmt: skip
        target = relabel(labels, job.get("relabel_configs") or [])
        if target is not None:
            found.append(target)
    return found


def check_prometheus_kubernetes(registry: Registry, config: Path, base: Path) -> list[str]:
    """What Prometheus, configured by ``config``, would miss of ``registry`` on the pods of the
    manifests in ``base``: each piece's pod must become one target labelled ``service=<piece>``
    on its port, at ``/metrics``."""
    [job] = (yaml.safe_load(config.read_text()) or {}).get("scrape_configs") or [{}]
    templates = {
        name: d["spec"]["template"]
        for kind in ("Deployment", "StatefulSet")
        for name, d in of_kind(base_documents(base), kind).items()
    }
    problems = Problems(config.name)
    for piece in registry:
        template = templates.get(piece.name)
        targets = pod_targets(job, piece.name, template) if template is not None else []
        if len(targets) != 1:
            problems.of(piece, f"{len(targets)} targets from its pods, not one")
            continue
        [target] = targets
        if target.get("service") != piece.name:
            problems.of(piece, f"labelled service={target.get('service')!r}")
        if target.get("__address__") != f"10.0.0.7:{piece.port}":
            problems.of(piece, f"scraped at {target.get('__address__')}, not port {piece.port}")
        if target.get("__metrics_path__") != "/metrics":
            problems.of(piece, f"scraped at {target.get('__metrics_path__')}, not /metrics")
    return problems
