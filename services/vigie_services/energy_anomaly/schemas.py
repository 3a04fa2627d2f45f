"""What ``POST /v1/predict`` of energy-anomaly answers for each scored day."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from vigie.contract.levels import Level


class Components(BaseModel):
    residual_z: float = Field(description="relative residual / the series' residual scale")
    profile_z: float = Field(description="standardised Isolation Forest score of the profile")
    missing_hours: int = Field(description="number of null hours")
    stuck_meter: bool = Field(description="flat or repeated profile rule")
    shifted_profile: bool = Field(description="time-shifted profile rule")


class DayPrediction(BaseModel):
    timestamp: datetime = Field(description="the scored day")
    level: Level
    forecast_mwh: float = Field(description="expected daily consumption, MWh")
    actual_mwh: float = Field(description="daily consumption (published, else sum of hours), MWh")
    residual_mwh: float = Field(description="actual - forecast, MWh")
    residual_pct: float = Field(description="residual / forecast, %")
    anomaly_score: float = Field(description="combined anomaly score (see the service doc)")
    components: Components
    kinds: list[str] = Field(
        description="suspected kinds when above NORMAL: spike, drop, stuck_meter, "
        "shifted_profile, missing_hours, unusual_profile"
    )
    profile_shift_hours: int = Field(
        description="shift (h) of the reference profile that best matches the day (0 = none)"
    )
    thresholds: dict[str, float] = Field(description="ALERTE / CRITIQUE score thresholds")
