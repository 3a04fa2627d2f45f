"""The Vigie services: each a thin declaration on top of the :mod:`vigie` runtime.

The fleet's pieces are declared in :mod:`vigie_services.pieces` and read by the runtime through
its registry (:mod:`vigie.ops.registry`): ``load().service_class(name)`` is a prediction
service's class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigie.contract.service import PredictionService

# name -> "module:Class" of each prediction service, derived from the registry (module
# __getattr__ below) for the callers that still read it; new code reads
# vigie.ops.registry.load().prediction_services.
PREDICTION_SERVICES: dict[str, str]


def load_service(name: str) -> type[PredictionService[Any, Any]]:
    """The class of the prediction service ``name``: ``load().service_class(name)`` of the
    registry (``KeyError`` listing the known services otherwise)."""
    from vigie.ops.registry import load

    return load().service_class(name)


def __getattr__(name: str) -> Any:
    if name == "PREDICTION_SERVICES":
        from vigie.ops.registry import load

        return {p.name: str(p.service_class) for p in load().prediction_services}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
