"""Which days a request may not send, and the 422 that names every bad field of a batch.

A given summary must be one a real day can have (:func:`consistency_errors`: the windows nest,
``days_since_*`` agree with today's counts...); a raw history may only hold flares that peaked
in its 27-day window. :func:`check_days` runs on every predict call: the rules on one matrix for
all days at once (:func:`inconsistent_rows`); only a batch with a bad day goes through the
per-day rules (:func:`checked_summaries`), whose 422 names every bad field of the batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vigie.contract.errors import Unprocessable, field_error
from vigie_services.solar_flare import summary as sm
from vigie_services.solar_flare.measurement import FlareDay

_AT = sm.INPUT_POSITION


def consistency_errors(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(column, reason) for summaries no real day can have (windows must nest, and so on)."""
    errors: list[tuple[str, str]] = []
    for letter in sm.COUNT_CLASSES:
        names = [f"n_{letter}_flares_today"] + [f"n_{letter}_flares_last_{w}d" for w in (3, 7, 27)]
        for shorter, longer in itertools.pairwise(names):
            if summary[longer] < summary[shorter]:
                errors.append((longer, f"must be >= {shorter} (the windows nest)"))
    for shorter, longer in itertools.pairwise(sm.FLUX_COLUMNS):
        if summary[longer] < summary[shorter]:
            errors.append((longer, f"must be >= {shorter} (the windows nest)"))
    if summary["days_since_last_X"] < summary["days_since_last_M_or_X"]:
        errors.append(
            ("days_since_last_X", "must be >= days_since_last_M_or_X (an X flare is >=M)")
        )
    big_today = summary["n_M_flares_today"] + summary["n_X_flares_today"] > 0
    if big_today != (summary["days_since_last_M_or_X"] == 0):
        errors.append(("days_since_last_M_or_X", "must be 0 exactly when an M or X flare is today"))
    if (summary["n_X_flares_today"] > 0) != (summary["days_since_last_X"] == 0):
        errors.append(("days_since_last_X", "must be 0 exactly when an X flare is today"))
    return errors


def _nesting_pairs() -> list[tuple[int, int]]:
    pairs = []
    for letter in sm.COUNT_CLASSES:
        names = [f"n_{letter}_flares_today"] + [f"n_{letter}_flares_last_{w}d" for w in (3, 7, 27)]
        pairs += [(_AT[a], _AT[b]) for a, b in itertools.pairwise(names)]
    pairs += [(_AT[a], _AT[b]) for a, b in itertools.pairwise(sm.FLUX_COLUMNS)]
    pairs.append((_AT["days_since_last_M_or_X"], _AT["days_since_last_X"]))
    return pairs


_SHORTER, _LONGER = (np.array(side) for side in zip(*_nesting_pairs(), strict=True))


def inconsistent_rows(values: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Per row of a :data:`~.summary.MODEL_INPUTS` matrix: whether :func:`consistency_errors`
    finds anything in that summary (the same rules, for all rows at once; the messages are
    :func:`consistency_errors`' to give, for the rows flagged here)."""
    t = np.asarray(values, dtype=np.float64).reshape(-1, len(sm.MODEL_INPUTS))
    bad: npt.NDArray[np.bool_] = np.any(t[:, _LONGER] < t[:, _SHORTER], axis=1)
    big_today = t[:, _AT["n_M_flares_today"]] + t[:, _AT["n_X_flares_today"]] > 0
    bad |= big_today != (t[:, _AT["days_since_last_M_or_X"]] == 0)
    bad |= (t[:, _AT["n_X_flares_today"]] > 0) != (t[:, _AT["days_since_last_X"]] == 0)
    return bad


def check_days(days: Sequence[FlareDay]) -> None:
    """Raise the 422 of :func:`checked_summaries` when a day of the batch is bad; the rules run
    on the matrix of every day at once. Each day's summary is derived once
    (:meth:`FlareDay.model_summary`), for the model call too."""
    try:
        summaries = [d.model_summary() for d in days]
    except ValueError:  # a flare outside its window
        checked_summaries(days)  # raises the 422 naming every bad field
        raise
    given = np.fromiter((d.summary is not None for d in days), dtype=bool, count=len(days))
    if (inconsistent_rows(sm.inputs_matrix(summaries)) & given).any():
        checked_summaries(days)  # raises the 422 naming every bad field
        raise AssertionError("inconsistent_rows and consistency_errors disagree")


def checked_summaries(days: Sequence[FlareDay]) -> list[dict[str, Any]]:
    """The summary of each day (given, or derived from raw), checked day by day: a 422 naming
    every bad field of the batch (the reference :func:`check_days` agrees with)."""
    out: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for i, m in enumerate(days):
        at: tuple[str | int, ...] = ("body", "measurements", i)
        day = sm.utc_day(m.timestamp)
        if m.summary is not None:
            summary = m.summary.model_dump()
            for column, reason in consistency_errors(summary):
                details.append(
                    field_error((*at, "summary", column), reason, "inconsistent_summary")
                )
        else:
            assert m.raw is not None  # the schema guarantees exactly one
            outside = []
            for j, flare in enumerate(m.raw.flares):
                try:
                    sm.window_offset(day, flare.peak_time)
                except ValueError as exc:
                    path = (*at, "raw", "flares", j, "peak_time")
                    outside.append(field_error(path, str(exc), "outside_window"))
            if outside:
                details += outside
                continue
            summary = m.model_summary()
        out.append(summary)
    if details:
        first = details[0]
        message = f"{first['field']}: {first['message']}"
        if len(details) > 1:
            message += f" (and {len(details) - 1} more)"
        raise Unprocessable(message, details=details)
    return out
