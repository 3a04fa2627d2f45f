"""Compiling a model's parts: :func:`compile_parts` converts each :class:`Part` (an inner
estimator the service declares, with its check rows and tolerance), runs both forms on the check
rows and publishes only the parts whose largest difference is within the tolerance; a part that
cannot be converted or disagrees is refused with the reason (logged; the card says why) and the
service keeps the joblib estimator for it. What is written next to the artifact is in
:mod:`vigie.models.compile.bundle`."""

from __future__ import annotations

import importlib.util
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vigie.models.compile.agreement import check_rows, max_abs_diff, method_of
from vigie.models.compile.bundle import CompiledBundle, CompiledPart, library_versions
from vigie.models.compile.convert import to_onnx
from vigie.models.compiled import CompiledPredictor

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # part names become file names


@dataclass(frozen=True)
class Part:
    """An inner estimator to compile and the rows its agreement is checked on.

    ``rows`` are the float64 rows the model feeds that estimator (e.g. the held-out slice's
    features); ``tolerance`` bounds ``|compiled - joblib|`` on every output, in ``unit``."""

    name: str
    estimator: Any
    rows: npt.ArrayLike
    tolerance: float
    unit: str = ""


def _refused(
    part: Part,
    method: str,
    reason: str,
    rows: int,
    seconds: float,
    diffs: dict[str, float] | None = None,
) -> CompiledPart:
    return CompiledPart(
        name=part.name,
        method=method,
        estimator=type(part.estimator).__name__,
        n_features=int(getattr(part.estimator, "n_features_in_", 0)),
        tolerance=part.tolerance,
        unit=part.unit,
        rows_checked=rows,
        convert_s=round(seconds, 3),
        max_abs_diff=diffs,
        reason=reason,
    )


def compile_part(part: Part) -> CompiledPart:
    """Convert one estimator, run both forms on its check rows, keep it within tolerance."""
    if not _NAME.match(part.name):
        raise ValueError(f"part name {part.name!r} must be 1-64 of A-Z a-z 0-9 _ -")
    started = time.perf_counter()
    method = method_of(part.estimator)
    rows = check_rows(part.rows)
    if not len(rows):
        return _refused(part, method, "no rows to check the compiled form on", 0, 0.0)
    try:
        data = to_onnx(part.estimator)
        n_features = int(part.estimator.n_features_in_)
        predictor = CompiledPredictor(part.name, data, method, n_features)
        diffs = max_abs_diff(part.estimator, predictor, method, rows)
    except Exception as exc:  # any converter or runtime failure leaves the joblib form in use
        message = " ".join(str(exc).split())[:300]
        reason = f"cannot compile {type(part.estimator).__name__}: {type(exc).__name__}: {message}"
        return _refused(part, method, reason, len(rows), time.perf_counter() - started)
    worst = max(diffs.values())
    seconds = time.perf_counter() - started
    if not worst <= part.tolerance:  # NaN is refused too
        reason = (
            f"max |compiled - joblib| {worst:.3g} {part.unit} on {len(rows)} check rows exceeds "
            f"the tolerance {part.tolerance:g}"
        )
        return _refused(part, method, reason, len(rows), seconds, diffs)
    return CompiledPart(
        name=part.name,
        method=method,
        estimator=type(part.estimator).__name__,
        n_features=n_features,
        tolerance=part.tolerance,
        unit=part.unit,
        rows_checked=len(rows),
        convert_s=round(seconds, 3),
        input_dtype=np.dtype(predictor.dtype).name,
        onnx=data,
        max_abs_diff=diffs,
    )


def compile_parts(
    parts: Sequence[Part], progress: Callable[[str], None] = lambda _m: None
) -> CompiledBundle:
    """Compile every part (see :func:`compile_part`); never raises for an estimator that cannot
    be compiled: that part is refused with the reason, and the service keeps its joblib form."""
    started = time.perf_counter()
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate part names in {names}")
    missing = [m for m in ("skl2onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed at training"
        done = [_refused(p, method_of(p.estimator), reason, 0, 0.0) for p in parts]
    else:
        done = [compile_part(p) for p in parts]
    for c in done:
        if c.published:
            assert c.max_abs_diff is not None
            progress(
                f"compiled {c.name} ({c.estimator}) to ONNX in {c.convert_s:.1f} s: max |diff| "
                f"{max(c.max_abs_diff.values()):.2g} {c.unit} <= {c.tolerance:g} on "
                f"{c.rows_checked} rows"
            )
        else:
            message = f"NOT publishing the compiled form of {c.name}, it stays joblib: {c.reason}"
            progress(message)
            log.warning(message)
    return CompiledBundle(
        parts=done,
        libraries=library_versions(),
        build_time_s=round(time.perf_counter() - started, 3),
    )
