"""The ``Dockerfile`` against the registry: a target per piece, on its port, serving it.

:func:`stages` parses a Dockerfile the way Docker reads it (continuation lines joined, comments
dropped) into its named stages, which the deploy tests use too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from vigie.ops.artifacts.problems import Problems, served_piece
from vigie.ops.registry import Registry

# `for s in a b c; do` in the stage that collects the models in service.
_MODELS_LOOP = re.compile(r"\bfor\s+\w+\s+in\s+([^;]*);")
MODELS_STAGE = "models"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of a Dockerfile, continuation lines joined as Docker joins them."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # a comment line inside a continued instruction is dropped
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def stages(text: str) -> dict[str, Stage]:
    """The stages of a Dockerfile by name (``#<index>`` when unnamed), global ARGs expanded in
    their ``FROM``."""
    global_args: dict[str, str] = {}
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, args in instructions(text):
        if keyword == "FROM":
            words = args.split()
            base = re.sub(
                r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), words[0]
            )
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"#{len(found)}"
            current = found[name] = Stage(name, base)
        elif current is None:
            if keyword == "ARG" and "=" in args:
                key, _, value = args.partition("=")
                global_args[key] = value
        else:
            current.instructions.append((keyword, args))
    return found


def chain(found: dict[str, Stage], name: str) -> list[Stage]:
    """``name`` and the stages it is built FROM, the target first."""
    out = [found[name]]
    while out[-1].base in found and found[out[-1].base] not in out:
        out.append(found[out[-1].base])
    return out


def exec_form(args: str | None) -> list[str] | None:
    """The words of an exec-form ``CMD``/``ENTRYPOINT`` (a JSON list), None otherwise."""
    try:
        words = json.loads(args or "null")
    except ValueError:
        return None
    if isinstance(words, list) and all(isinstance(w, str) for w in words):
        return words
    return None


def serve_command(piece: str) -> list[str]:
    """The ``CMD`` of a piece's image."""
    return ["vigie", "serve", piece, "--host", "0.0.0.0"]  # noqa: S104 (inside a container)


def check_dockerfile(registry: Registry, path: Path) -> list[str]:
    """What ``path`` lacks for ``registry``: for each piece a target named after it that copies
    its own package, exposes and health-checks its port and serves it; for each prediction
    service, its model (and a place in the loop of the ``models`` stage). Also a target serving
    a piece the registry does not know."""
    found = stages(path.read_text())
    problems = Problems(path.name)
    models = found.get(MODELS_STAGE)
    loop = _MODELS_LOOP.search(" ".join(models.all("RUN"))) if models is not None else None
    collected = set(loop.group(1).split()) if loop else set()
    for piece, stage in problems.each_found(registry, found, "no target (stage) named after it"):
        if stage.last("EXPOSE") != str(piece.port):
            problems.of(piece, f"EXPOSE {stage.last('EXPOSE')}, not {piece.port}")
        if f"http://127.0.0.1:{piece.port}/readyz" not in (stage.last("HEALTHCHECK") or ""):
            problems.of(piece, f"no HEALTHCHECK on http://127.0.0.1:{piece.port}/readyz")
        if exec_form(stage.last("CMD")) != serve_command(piece.name):
            problems.of(piece, f"CMD is not {json.dumps(serve_command(piece.name))}")
        package = "/" + piece.code_package.replace(".", "/") + "/"
        copies = [c for s in chain(found, piece.name) for c in s.all("COPY")]
        if not any(package in c for c in copies):
            problems.of(piece, f"copies not its package ({package.strip('/')})")
        if piece.is_prediction:
            model = f"--from={MODELS_STAGE} /models/{piece.name}/ /app/models/{piece.name}/"
            if not any(model in c for c in copies):
                problems.of(piece, f"no COPY {model}")
            if piece.name not in collected:
                problems.of(piece, f"not in the loop of the {MODELS_STAGE!r} stage")
    for name, stage in found.items():
        served = served_piece(exec_form(stage.last("CMD")) or [])
        if served is not None and served not in registry:
            problems.append(f"{path.name}: target {name!r} serves {served!r}, no piece")
    return problems
