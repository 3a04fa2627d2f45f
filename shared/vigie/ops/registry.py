"""The registry of the fleet's pieces: the one list every part of the runtime reads.

A *piece* is a process of the fleet that ``vigie serve`` runs under gunicorn: auth, alerting and
each prediction service (design.md section 1). The runtime never names them. They are declared by
the package that implements them, as :class:`Piece` values, and found through the entry point
group ``vigie.pieces`` (``pyproject.toml``)::

    [project.entry-points."vigie.pieces"]
    vigie_services = "vigie_services.pieces:PIECES"

An entry point names a :class:`Piece`, an iterable of pieces, or a callable returning either.
:func:`load` reads them once per process; tests build their own :class:`Registry` (for instance
``load().with_piece(Piece(...))``) and pass it where the code takes one: ``FleetSettings(registry=
...)``, the artifact checks of :mod:`vigie.ops.artifacts`, ``CliRunner().invoke(app, args,
obj=registry)``.

Whatever a piece brings (its app factory, its preparation, its prediction-service class, its CLI
commands) is a ``"module:attribute"`` string, imported only when used: a container holds the code
of one piece but the declarations of all, and declaring the fleet costs no import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from vigie.contract.service import PredictionService
    from vigie.settings import VigieSettings

ENTRY_POINT_GROUP = "vigie.pieces"

# What the runtime prepares for every prediction service (vigie.ops.prepare), and serves them with.
PREDICTION_PREPARE = "vigie.ops.prepare:prediction_service"
PREDICTION_APP = 'vigie.serve.app:app_for("{name}")'

_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_SCOPE = re.compile(r"[a-z][a-z0-9_-]*:[a-z0-9_*-]+")
# "module:attribute" (attribute may be dotted: "pkg.mod:Class.method").
_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
# What gunicorn accepts as an app: "module:name" or "module:factory(literal args)".
_APP_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*(\(.*\))?")


class RegistryError(ValueError):
    """A declaration of the registry is wrong (or missing): the fleet cannot be laid out."""


class UnknownPiece(KeyError):
    """No piece (or no prediction service) of that name; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class Kind(StrEnum):
    """What a piece is: the platform (auth, alerting) or a prediction service (design.md
    section 2). Prediction services get models, a prediction log and the predict/feedback API."""

    PLATFORM = "platform"
    PREDICTION = "prediction"


class Workers(StrEnum):
    """How many processes of a piece may run."""

    #: ``--workers`` / ``VIGIE_WORKERS`` gunicorn workers, replicas as the deployment scales.
    CONFIGURED = "configured"
    #: Exactly one process in the whole fleet: one worker, one replica, replaced (Kubernetes
    #: ``Recreate``) rather than rolled. Alerting's consumer keeps each asset's events in order.
    ONE = "one"


@dataclass(frozen=True)
class CliSpec:
    """A ``vigie <name> ...`` command group a piece brings: ``app`` is the ``"module:attribute"``
    of a ``typer.Typer``."""

    name: str
    app: str


class ClientStore(Protocol):
    """The OAuth2 client registry a piece keeps (auth's): what `vigie fleet run` needs to make
    the dev client of `vigie replay`."""

    def create_schema(self) -> None: ...
    def add_client(self, client_id: str, scopes: Iterable[str]) -> str: ...
    def verify_client(self, client_id: str, secret: str) -> frozenset[str] | None: ...
    def remove_client(self, client_id: str) -> bool: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Piece:
    """One piece of the fleet, as every tool sees it.

    - ``name``: design.md's name; the compose service, Kubernetes objects, Dockerfile target,
      Procfile process and Prometheus ``service`` label are all called so.
    - ``port``: its local port (design.md section 1).
    - ``app``: what gunicorn serves, ``"module:callable()"``.
    - ``prefix``: its route on the gateway, ``/<name>/`` unless given (one path segment; the
      gateway strips it).
    - ``workers``: :class:`Workers`.
    - ``scopes``: the token scopes its API checks (design.md section 4).
    - ``prepare``: ``"module:function"`` called as ``function(piece, settings)`` by ``vigie
      serve`` before gunicorn forks: checks the configuration (raising ``ConfigError`` with the
      reason) and creates what the workers must not race to create (tables, outbox).
    - ``service_class``: for a prediction service, ``"module:Class"`` of its
      :class:`~vigie.contract.service.PredictionService`.
    - ``cli``: a command group it adds to ``vigie`` (:class:`CliSpec`), if any.
    - ``client_store``: ``"module:callable"`` building its OAuth2 :class:`ClientStore` from the
      settings, for the piece that issues tokens.

    Use :func:`prediction_service` to declare a prediction service: it fills in what the runtime
    provides for all of them.
    """

    name: str
    port: int
    app: str
    kind: Kind = Kind.PLATFORM
    prefix: str = ""
    workers: Workers = Workers.CONFIGURED
    scopes: tuple[str, ...] = ()
    prepare: str | None = None
    service_class: str | None = None
    cli: CliSpec | None = None
    client_store: str | None = None

    def __post_init__(self) -> None:
        if not self.prefix:
            object.__setattr__(self, "prefix", f"/{self.name}/")
        object.__setattr__(self, "scopes", tuple(self.scopes))
        for problem in self._problems():
            raise RegistryError(f"piece {self.name!r}: {problem}")

    def _problems(self) -> Iterator[str]:
        if not _NAME.fullmatch(self.name):
            yield "a name is lowercase words joined by '-', e.g. turbine-nox"
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            yield f"port {self.port!r} is not a number"
        elif not 1 <= self.port <= 65535:
            yield f"port {self.port} is not in 1-65535"
        if not re.fullmatch(r"/[a-z0-9][a-z0-9_-]*/", self.prefix):
            yield f"prefix {self.prefix!r}: one path segment between slashes, e.g. /{self.name}/"
        if not _APP_SPEC.fullmatch(self.app):
            yield f"app {self.app!r}: a gunicorn app, 'module:callable()'"
        for scope in self.scopes:
            if not _SCOPE.fullmatch(scope):
                yield f"scope {scope!r}: 'kind:target', e.g. predict:{self.name}"
        specs = {"prepare": self.prepare, "service_class": self.service_class,
                 "client_store": self.client_store,
                 "cli": self.cli.app if self.cli is not None else None}  # fmt: skip
        for what, spec in specs.items():
            if spec is not None and not _SPEC.fullmatch(spec):
                yield f"{what} {spec!r}: 'module:attribute'"
        if self.cli is not None and not _NAME.fullmatch(self.cli.name):
            yield f"cli name {self.cli.name!r}: lowercase words joined by '-'"
        if self.is_prediction != (self.service_class is not None):
            yield "a prediction service has a service_class, and only a prediction service"

    @property
    def is_prediction(self) -> bool:
        return self.kind is Kind.PREDICTION

    @property
    def code_package(self) -> str:
        """The package holding the piece's own code (``vigie_services.turbine_nox``): the one
        its container image copies besides the runtime."""
        own = self.service_class if self.service_class is not None else self.app
        return own.partition(":")[0].rpartition(".")[0]

    def workers_for(self, requested: int) -> int:
        """The gunicorn workers to run when ``requested`` are asked for."""
        return 1 if self.workers is Workers.ONE else requested

    def load_service_class(self) -> type[PredictionService[Any, Any]]:
        if self.service_class is None:
            raise UnknownPiece(f"{self.name!r} is not a prediction service")
        service: type[PredictionService[Any, Any]] = resolve(self.service_class)
        return service


def prediction_service(name: str, port: int, service_class: str, **more: Any) -> Piece:
    """A prediction service: served by the runtime's app factory, prepared by the runtime
    (:mod:`vigie.ops.prepare`), with the scopes of design.md section 2. ``more`` overrides any
    other :class:`Piece` field."""
    fields: dict[str, Any] = {
        "app": PREDICTION_APP.format(name=name),
        "kind": Kind.PREDICTION,
        "scopes": (f"predict:{name}", f"feedback:{name}", "models:admin"),
        "prepare": PREDICTION_PREPARE,
        **more,
    }
    return Piece(name=name, port=port, service_class=service_class, **fields)


def resolve(spec: str) -> Any:
    """The object a ``"module:attribute"`` spec names (the attribute may be dotted)."""
    module, _, attribute = spec.partition(":")
    found: Any = import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def is_importable(spec: str) -> bool:
    """Whether the module of ``spec`` is present here. A container image holds the code of its
    own piece only: the others' modules are absent, and that is no error. Any other failure
    (a missing dependency, a bug) raises."""
    module = spec.partition(":")[0]
    try:
        import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module == missing or module.startswith(missing + "."):
            return False
        raise
    return True


@dataclass(frozen=True)
class Registry:
    """The pieces of the fleet, in start order (the order they are declared in).

    Names, ports and gateway prefixes are unique; at most one piece keeps the OAuth2 clients.
    """

    pieces: tuple[Piece, ...]
    _by_name: dict[str, Piece] = field(init=False, repr=False, compare=False)

    def __init__(self, pieces: Iterable[Piece]) -> None:
        listed = tuple(pieces)
        for piece in listed:
            if not isinstance(piece, Piece):
                raise RegistryError(f"not a Piece: {piece!r}")
        for what, key in (("name", "name"), ("port", "port"), ("gateway prefix", "prefix")):
            seen: dict[object, str] = {}
            for piece in listed:
                value = getattr(piece, key)
                if value in seen:
                    raise RegistryError(
                        f"pieces {seen[value]!r} and {piece.name!r} have the same {what} {value}"
                    )
                seen[value] = piece.name
        stores = [p.name for p in listed if p.client_store is not None]
        if len(stores) > 1:
            raise RegistryError(f"only one piece keeps the OAuth2 clients, not {stores}")
        object.__setattr__(self, "pieces", listed)
        object.__setattr__(self, "_by_name", {p.name: p for p in listed})

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> Registry:
        """The pieces every installed distribution declares in ``group`` (entry points sorted by
        name, each one's pieces in their own order)."""
        pieces: list[Piece] = []
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            declared = ep.load()
            if callable(declared) and not isinstance(declared, Piece):
                declared = declared()
            if isinstance(declared, Piece):
                declared = [declared]
            try:
                pieces.extend(declared)
            except TypeError:
                raise RegistryError(
                    f"entry point {ep.name} = {ep.value} ({group}): not a Piece nor pieces"
                ) from None
        if not pieces:
            raise RegistryError(
                f"no pieces declared: no installed distribution has entry points in {group!r} "
                "(in a checkout: .venv/bin/pip install -e .)"
            )
        return cls(pieces)

    def with_piece(self, piece: Piece) -> Registry:
        """This registry and ``piece`` (last), e.g. a test's extra piece."""
        return Registry([*self.pieces, piece])

    def without(self, name: str) -> Registry:
        self.get(name)
        return Registry(p for p in self.pieces if p.name != name)

    def replacing(self, name: str, **changes: Any) -> Registry:
        """This registry with ``name``'s declaration changed (``dataclasses.replace``)."""
        piece = replace(self.get(name), **changes)
        return Registry(piece if p.name == name else p for p in self.pieces)

    # -- lookups ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Piece]:
        return iter(self.pieces)

    def __len__(self) -> int:
        return len(self.pieces)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    @property
    def prediction_services(self) -> tuple[Piece, ...]:
        return tuple(p for p in self.pieces if p.is_prediction)

    @property
    def prediction_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.prediction_services)

    @property
    def platform(self) -> tuple[Piece, ...]:
        """The pieces that always run (not prediction services): auth, alerting."""
        return tuple(p for p in self.pieces if not p.is_prediction)

    @property
    def ports(self) -> dict[str, int]:
        return {p.name: p.port for p in self.pieces}

    def get(self, name: str) -> Piece:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownPiece(f"unknown piece {name!r}; known: {', '.join(self.names)}") from None

    def prediction_service(self, name: str) -> Piece:
        piece = self._by_name.get(name)
        if piece is None or not piece.is_prediction:
            known = ", ".join(self.prediction_names)
            raise UnknownPiece(f"unknown service {name!r}; known: {known}")
        return piece

    def service_class(self, name: str) -> type[PredictionService[Any, Any]]:
        """The :class:`~vigie.contract.service.PredictionService` subclass of ``name``, e.g.
        ``load().service_class("turbine-nox")(settings)``; :class:`UnknownPiece` otherwise."""
        return self.prediction_service(name).load_service_class()

    def scopes(self, names: Iterable[str] | None = None) -> tuple[str, ...]:
        """Every scope the pieces ``names`` (default: all) check, each once, in piece order."""
        chosen = self.pieces if names is None else tuple(self.get(n) for n in names)
        return tuple(dict.fromkeys(s for p in chosen for s in p.scopes))

    def prepare(self, name: str, settings: VigieSettings) -> None:
        """Run ``name``'s preparation (:attr:`Piece.prepare`), if it has one."""
        piece = self.get(name)
        if piece.prepare is not None:
            prepare: Callable[[Piece, VigieSettings], None] = resolve(piece.prepare)
            prepare(piece, settings)

    def client_store(self, settings: VigieSettings) -> ClientStore:
        """The OAuth2 client registry of the piece that keeps one (auth)."""
        for piece in self.pieces:
            if piece.client_store is not None:
                factory: Callable[[VigieSettings], ClientStore] = resolve(piece.client_store)
                return factory(settings)
        raise RegistryError("no piece keeps OAuth2 clients (client_store)")


@cache
def load() -> Registry:
    """The registry of the installed pieces (:meth:`Registry.from_entry_points`), read once per
    process. ``load.cache_clear()`` reads them again."""
    return Registry.from_entry_points()
