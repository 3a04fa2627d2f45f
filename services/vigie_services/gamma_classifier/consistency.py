"""What the schema of one event cannot check: an image's minor axis is at most its major axis
(``fWidth <= fLength``) and its brightest pixel at most its two brightest ones
(``fConc1 <= fConc``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from vigie.contract.errors import Unprocessable, field_error
from vigie_services.gamma_classifier.features import COLUMNS

_LENGTH, _WIDTH, _CONC, _CONC1 = (
    COLUMNS.index(c) for c in ("fLength", "fWidth", "fConc", "fConc1")
)


def check_events(values: npt.NDArray[np.float64]) -> None:
    """:class:`Unprocessable` naming every inconsistent event (its field, in request order);
    ``values`` are the events' :data:`~.features.COLUMNS` ``(n, 10)``, checked in one numpy
    pass."""
    bad = (values[:, _WIDTH] > values[:, _LENGTH]) | (values[:, _CONC1] > values[:, _CONC])
    if not bad.any():
        return
    details: list[dict[str, Any]] = []
    for i in np.flatnonzero(bad).tolist():
        # Python floats, so that messages print the values as the client sent them
        length, width, conc, conc1 = values[i, [_LENGTH, _WIDTH, _CONC, _CONC1]].tolist()
        if width > length:
            details.append(
                field_error(
                    ("body", "measurements", i, "fWidth"),
                    f"the minor axis fWidth ({width} mm) exceeds the major axis fLength "
                    f"({length} mm)",
                    "width_above_length",
                )
            )
        if conc1 > conc:
            details.append(
                field_error(
                    ("body", "measurements", i, "fConc1"),
                    f"fConc1 ({conc1}, highest pixel) exceeds fConc ({conc}, two highest pixels)",
                    "conc1_above_conc",
                )
            )
    first = details[0]
    message = f"{first['field']}: {first['message']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    raise Unprocessable(message, details=details)
