"""Windows of consecutive measurements (hourly, daily...): a rule the runtime checks before a
service sees the rows, with a 422 naming the first measurement that breaks it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from vigie.contract.errors import Unprocessable, field_error


@dataclass(frozen=True)
class Window:
    """Measurements ``step`` apart, oldest first, at least ``min_rows`` of them.

    ``what`` names the step in messages (``"hourly"``, ``"daily"``); ``min_reason`` says why the
    minimum is what it is (e.g. "71 h of history and the hour to forecast from"). With
    ``calendar_days`` the rule is on dates (one calendar day apart, whatever the hour)."""

    step: timedelta
    min_rows: int = 1
    what: str = ""
    min_reason: str = ""
    calendar_days: bool = False

    def check(self, times: Sequence[datetime]) -> None:
        """Raise :class:`Unprocessable` unless ``times`` follow the rule."""
        step = self.step
        label = self.what or f"{step} apart"
        for i in range(1, len(times)):
            if self.calendar_days:
                apart = times[i].date() - times[i - 1].date() == step
            else:
                apart = times[i] - times[i - 1] == step
            if not apart:
                expected = times[i - 1] + step
                raise Unprocessable(
                    f"measurements must be {label}, oldest first, without gaps: expected "
                    f"{expected.isoformat()} at measurements.{i}, got {times[i].isoformat()}",
                    details=[
                        field_error(
                            ("body", "measurements", i, "timestamp"),
                            f"expected {expected.isoformat()} ({step} after the previous one)",
                            "not_consecutive",
                        )
                    ],
                )
        if len(times) < self.min_rows:
            why = f" ({self.min_reason})" if self.min_reason else ""
            raise Unprocessable(
                f"needs at least {self.min_rows} consecutive {label} measurements{why}; "
                f"got {len(times)}",
                details=[
                    field_error(
                        ("body", "measurements"),
                        f"at least {self.min_rows} measurements needed",
                        "too_short",
                    )
                ],
            )
