"""What a solar-flare request sends for one UTC day *d*: its summary or its raw material.

:class:`FlareDay` is the service's ``Measurement``; its ``summary`` (:class:`DailySummary`) holds
the columns of ``daily_train.csv`` (bounds and units from :data:`~.summary.SUMMARY_COLUMNS`), its
``raw`` (:class:`RawHistory`) the flares and sunspot numbers of *d-26 … d*.
:meth:`FlareDay.model_summary` is the summary the model reads either way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import time as dtime
from typing import Annotated, Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from vigie.contract.service import MeasurementBase, Rfc3339, StrictModel
from vigie_services.solar_flare import summary as sm


def _col(name: str) -> Any:
    """A pydantic Field with the bounds, unit and meaning of one summary column."""
    c = next(c for c in sm.SUMMARY_COLUMNS if c.name == name)
    return Field(ge=c.ge, le=c.le, description=f"{c.description} [{c.unit}]")


def _optional_col(name: str) -> Any:
    c = next(c for c in sm.SUMMARY_COLUMNS if c.name == name)
    return Field(default=None, ge=c.ge, le=c.le, description=f"{c.description} [{c.unit}]")


class DailySummary(StrictModel):
    """The summary columns of ``daily_train.csv`` for day d (see the data set's README)."""

    sunspot_number: float = _col("sunspot_number")
    sunspot_number_std: float | None = _optional_col("sunspot_number_std")
    sunspot_n_obs: int | None = _optional_col("sunspot_n_obs")
    sunspot_number_mean_27d: float = _col("sunspot_number_mean_27d")
    sunspot_number_change_1d: float = _col("sunspot_number_change_1d")
    n_B_flares_today: int = _col("n_B_flares_today")  # noqa: N815 (the CSV column)
    n_C_flares_today: int = _col("n_C_flares_today")  # noqa: N815 (the CSV column)
    n_M_flares_today: int = _col("n_M_flares_today")  # noqa: N815 (the CSV column)
    n_X_flares_today: int = _col("n_X_flares_today")  # noqa: N815 (the CSV column)
    n_C_flares_last_3d: int = _col("n_C_flares_last_3d")  # noqa: N815 (the CSV column)
    n_C_flares_last_7d: int = _col("n_C_flares_last_7d")  # noqa: N815 (the CSV column)
    n_C_flares_last_27d: int = _col("n_C_flares_last_27d")  # noqa: N815 (the CSV column)
    n_M_flares_last_3d: int = _col("n_M_flares_last_3d")  # noqa: N815 (the CSV column)
    n_M_flares_last_7d: int = _col("n_M_flares_last_7d")  # noqa: N815 (the CSV column)
    n_M_flares_last_27d: int = _col("n_M_flares_last_27d")  # noqa: N815 (the CSV column)
    n_X_flares_last_3d: int = _col("n_X_flares_last_3d")  # noqa: N815 (the CSV column)
    n_X_flares_last_7d: int = _col("n_X_flares_last_7d")  # noqa: N815 (the CSV column)
    n_X_flares_last_27d: int = _col("n_X_flares_last_27d")  # noqa: N815 (the CSV column)
    max_xray_flux_today: float = _col("max_xray_flux_today")
    max_xray_flux_last_3d: float = _col("max_xray_flux_last_3d")
    max_xray_flux_last_27d: float = _col("max_xray_flux_last_27d")
    days_since_last_M_or_X: int = _col("days_since_last_M_or_X")  # noqa: N815 (the CSV column)
    days_since_last_X: int = _col("days_since_last_X")  # noqa: N815 (the CSV column)


class FlareEventIn(StrictModel):
    """One GOES X-ray flare of the last 27 days."""

    goes_class: str = Field(
        max_length=16,
        description=(
            "GOES class: a letter A, B, C, M or X (upper case) and a magnitude > 0, e.g. M2.3, "
            "X1.0, C5; below 10 for A-M. Peak flux = magnitude x 1e-8 (A), 1e-7 (B), 1e-6 (C), "
            "1e-5 (M), 1e-4 (X) W/m²"
        ),
        json_schema_extra={"pattern": sm.CLASS_PATTERN},
        examples=["M2.3"],
    )
    peak_time: Rfc3339 = Field(
        description="peak time, RFC 3339 with a UTC offset; its UTC date must be in d-26 .. d"
    )

    @field_validator("goes_class")
    @classmethod
    def _valid_class(cls, value: str) -> str:
        sm.parse_flare_class(value)  # FlareClassError is a ValueError: a 422 naming the field
        return value


SunspotNumber = Annotated[float, Field(ge=0, le=1000)]


class RawHistory(StrictModel):
    """The raw material of day d: the flares and sunspot numbers of d-26 .. d."""

    flares: list[FlareEventIn] = Field(
        max_length=5000,
        description="every GOES flare (A-X) that peaked on d-26 .. d (UTC dates); may be empty",
    )
    sunspot_numbers: list[SunspotNumber] = Field(
        min_length=sm.WINDOW_DAYS,
        max_length=sm.WINDOW_DAYS,
        description=(
            f"the {sm.WINDOW_DAYS} SILSO daily total sunspot numbers of d-26 .. d, oldest first "
            "(the last one is day d) [SN v2]"
        ),
    )
    sunspot_number_std: float | None = _optional_col("sunspot_number_std")
    sunspot_n_obs: int | None = _optional_col("sunspot_n_obs")


class FlareDay(MeasurementBase):
    """One UTC day d to forecast from: its summary OR its raw material (exactly one)."""

    summary: DailySummary | None = Field(default=None, description="the summary of day d")
    raw: RawHistory | None = Field(default=None, description="the raw material of day d")
    # model_summary() once computed: the domain checks, the model call and the items all read it
    # (a private attribute: never validated, dumped nor logged).
    _model_summary: dict[str, Any] | None = PrivateAttr(default=None)

    @field_validator("timestamp")
    @classmethod
    def _midnight_utc(cls, value: datetime) -> datetime:
        utc = value.astimezone(UTC)
        if utc.time() != dtime(0, 0):
            raise ValueError(
                "timestamp must be 00:00:00Z of the UTC day d, e.g. 2017-09-05T00:00:00Z"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> FlareDay:
        if (self.summary is None) == (self.raw is None):
            raise ValueError("give exactly one of summary or raw for each day")
        return self

    def model_summary(self) -> dict[str, Any]:
        """The summary the model reads for this day (every column of
        :data:`~.summary.SUMMARY_NAMES`): the one given, or the one :func:`~.summary.
        summary_from_raw` derives from ``raw``. ``ValueError`` for a flare that peaked outside
        the day's window (:mod:`.consistency` names it)."""
        found = self._model_summary
        if found is None:
            if self.summary is not None:
                # DailySummary has only int / float / None fields: its __dict__ is its
                # model_dump(), without the serializer (tests/services/solar_flare checks it).
                found = self.summary.__dict__.copy()
            else:
                raw = self.raw
                assert raw is not None  # the schema guarantees exactly one
                events = [sm.FlareEvent(f.goes_class, f.peak_time) for f in raw.flares]
                found = sm.summary_from_raw(
                    sm.utc_day(self.timestamp),
                    events,
                    raw.sunspot_numbers,
                    raw.sunspot_number_std,
                    raw.sunspot_n_obs,
                )
                found.pop("date")
            self._model_summary = found
        return found
