"""How the runtime scores a service's rows (see :mod:`vigie.contract.batch`): the window and
domain checks, the model call, the presentation; and, for micro-batching, several calls' rows
through one model call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from vigie.contract.batch import Batch, Scores, slice_outputs
from vigie.contract.service import PredictionService

Service = PredictionService[Any, Any]
T = TypeVar("T")


def checked(service: Service, batch: Batch[Any]) -> None:
    """The request-level rules: the declared window, then the service's own checks."""
    if service.window is not None:
        service.window.check(batch.times)
    service.check(batch)


def score_call(service: Service, batch: Batch[Any]) -> Scores:
    """One predict call: checks, the model call, the presentation."""
    checked(service, batch)
    return service.present(batch, service.infer(batch))


def score_calls(service: Service, batches: Sequence[Batch[Any]]) -> list[Scores | Exception]:
    """Several calls at once (micro-batching): one result per call, in order, or the exception
    that call raised (its own 422). When the service's rows are independent, the rows of every
    call that passed its checks go through ONE :meth:`infer`, whose outputs are sliced back per
    call; should that joint call fail, each call is scored alone."""
    if not service.rows_independent:
        return [_guarded(score_call, service, b) for b in batches]
    problems = [_guarded(checked, service, b) for b in batches]
    ready = [b for b, problem in zip(batches, problems, strict=True) if problem is None]
    if not ready:
        return [p for p in problems if p is not None]
    try:
        joint = service.infer(Batch("", [row for b in ready for row in b.rows]))
    except Exception:
        joint = None
    out: list[Scores | Exception] = []
    start = 0
    for batch, problem in zip(batches, problems, strict=True):
        if problem is not None:
            out.append(problem)
        elif joint is None:
            out.append(_guarded(score_call, service, batch))
        else:
            outputs = slice_outputs(joint, start, start + len(batch))
            out.append(_guarded(service.present, batch, outputs))
            start += len(batch)
    return out


def _guarded(fn: Callable[..., T], *args: Any) -> T | Exception:
    """``fn(*args)``, or the exception it raised (one call's failure stays in its slot)."""
    try:
        return fn(*args)
    except Exception as exc:
        return exc
