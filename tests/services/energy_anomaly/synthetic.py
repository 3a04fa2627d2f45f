"""Small synthetic gas-consumption data in the format of ``gas_regional_daily_train.csv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vigie_services.energy_anomaly import data as dt

# (operator, region as written in the file, series id, size MWh/day, evening peak hour)
SERIES = [
    ("GRTgaz", "auvergne-rhône-alpes", "grtgaz.auvergne-rhone-alpes", 40000.0, 19),
    ("GRTgaz", "île-de-france", "grtgaz.ile-de-france", 90000.0, 18),
    ("Teréga", "occitanie", "terega.occitanie", 3000.0, 13),
]


def profile(peak: int) -> np.ndarray:
    """A normalised 24-h profile with a morning and an evening peak (sums to 1)."""
    h = np.arange(24)
    shape = (
        1.0
        + 0.5 * np.exp(-0.5 * ((h - 7) / 1.5) ** 2)
        + 0.7 * np.exp(-0.5 * ((h - peak) / 2.0) ** 2)
        - 0.3 * np.exp(-0.5 * ((h - 3) / 2.0) ** 2)
    )
    return shape / shape.sum()


def gas_frame(start: str = "2021-01-01", days: int = 730, seed: int = 0) -> pd.DataFrame:
    """A :func:`data.load_frame`-shaped frame: weekly and yearly seasonality, holidays, an AR(1)
    'weather' factor and hourly profiles with small noise."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=days, freq="D")
    doy = dates.day_of_year.to_numpy()
    season = 1.0 + 0.8 * np.cos(2 * np.pi * (doy - 15) / 365.25)
    weekday = np.where(dates.day_of_week.to_numpy() >= 5, 0.9, 1.0)
    holiday = np.array([0.85 if dt.is_holiday(d.date()) else 1.0 for d in dates])
    movement = rng.random(days) < 0.02
    rows = []
    for operator, region, sid, size, peak in SERIES:
        weather = np.empty(days)
        weather[0] = 0.0
        for i in range(1, days):
            weather[i] = 0.8 * weather[i - 1] + rng.normal(0, 0.03)
        total = size * season * weekday * holiday * np.exp(weather) * (1 - 0.03 * movement)
        base = profile(peak)
        for i, d in enumerate(dates):
            p = base * np.exp(rng.normal(0, 0.02, 24))
            hours = total[i] * p / p.sum()
            rows.append(
                {"series": sid, "date": d, **dict(zip(dt.HOURS, hours, strict=True)),
                 "daily": float(hours.sum()), "movement": bool(movement[i]),
                 "operator": operator, "region": region}
            )  # fmt: skip
    return pd.DataFrame(rows).sort_values(["series", "date"]).reset_index(drop=True)


def write_gas_data(data_dir: Path, days: int = 730, seed: int = 0) -> Path:
    """``data_dir/energy/gas_regional_daily_train.csv`` from :func:`gas_frame`."""
    folder = data_dir / "energy"
    folder.mkdir(parents=True, exist_ok=True)
    dt.to_training_csv(gas_frame(days=days, seed=seed), folder / "gas_regional_daily_train.csv")
    return data_dir


def day_measurements(frame: pd.DataFrame, series: str, rows: slice) -> list[dict]:
    """API measurements of one series of :func:`gas_frame` (rows of that series)."""
    part = frame[frame["series"] == series].iloc[rows]
    out = []
    for rec in part.to_dict("records"):
        out.append(
            {
                "timestamp": pd.Timestamp(rec["date"]).strftime("%Y-%m-%dT00:00:00Z"),
                "hourly_mwh": [None if pd.isna(rec[h]) else float(rec[h]) for h in dt.HOURS],
                "daily_mwh": None if pd.isna(rec["daily"]) else float(rec["daily"]),
                "movement_social": bool(rec["movement"]),
            }
        )
    return out
