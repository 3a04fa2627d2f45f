"""Small synthetic solar activity for the solar-flare tests (never the real data set).

An activity cycle (period 300 days) times a slowly varying "active region" factor drives daily
Poisson counts of B, C, M and X flares (B flares are swamped by the background when activity is
high, as on the real Sun) and the sunspot number. The raw material (flare events with class
strings and peak times, daily sunspot numbers) is kept, and the ``daily_train.csv``-shaped table
is built from it with ``summary_from_raw`` plus the next-day targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigie_services.solar_flare import summary as sm

HISTORY = sm.WINDOW_DAYS


@dataclass
class Simulation:
    start: date
    events: list[list[sm.FlareEvent]]  # per day index
    sunspots: list[float]
    table: pd.DataFrame  # daily_train.csv columns; row k is day index k + HISTORY - 1

    def day(self, index: int) -> date:
        return self.start + timedelta(days=index)

    def row_index(self, day: date) -> int:
        return (day - self.start).days

    def window_events(self, index: int) -> list[sm.FlareEvent]:
        return [e for k in range(index - HISTORY + 1, index + 1) for e in self.events[k]]

    def window_sunspots(self, index: int) -> list[float]:
        return self.sunspots[index - HISTORY + 1 : index + 1]

    def raw_json(self, index: int) -> dict[str, Any]:
        """The ``raw`` object of a request for day ``index``."""
        return {
            "flares": [
                {"goes_class": e.goes_class, "peak_time": e.peak_time.isoformat()}
                for e in self.window_events(index)
            ],
            "sunspot_numbers": self.window_sunspots(index),
        }

    def summary_json(self, index: int) -> dict[str, Any]:
        """The ``summary`` object of a request for day ``index`` (from the table)."""
        row = self.table.loc[self.table["date"] == pd.Timestamp(self.day(index))].iloc[0]
        out: dict[str, Any] = {}
        for col in sm.SUMMARY_COLUMNS:
            value = row[col.name]
            out[col.name] = int(value) if col.kind is int else float(value)
        return out

    def timestamp(self, index: int) -> str:
        return f"{self.day(index).isoformat()}T00:00:00Z"


def _magnitude(rng: np.random.Generator, letter: str) -> str:
    top = 4.0 if letter == "X" else 9.9
    return f"{letter}{rng.uniform(1.0, top):.1f}"


def simulate(days: int = 700, seed: int = 0, start: date = date(2010, 1, 1)) -> Simulation:
    """``days`` rows of table (plus 26 days of leading history and 1 trailing day)."""
    rng = np.random.default_rng(seed)
    total = days + HISTORY  # HISTORY - 1 leading days, 1 trailing day for the last target
    t = np.arange(total)
    cycle = 0.08 + 0.92 * (0.5 - 0.5 * np.cos(2 * np.pi * t / 300))
    region = np.zeros(total)
    for i in range(1, total):
        region[i] = 0.85 * region[i - 1] + rng.normal(0, 0.35)
    activity = cycle * np.exp(region)
    sunspots = np.maximum(0, np.round(180 * cycle + 40 * region + rng.normal(0, 8, total)))

    events: list[list[sm.FlareEvent]] = []
    for i in range(total):
        day = start + timedelta(days=i)
        a = activity[i]
        counts = {
            "A": rng.poisson(0.3 * (1 - cycle[i])),
            "B": rng.poisson(4.0 * (1 - cycle[i]) + 0.2),
            "C": rng.poisson(6.0 * a),
            "M": rng.poisson(0.5 * a**2),
            "X": rng.poisson(0.04 * a**3),
        }
        todays = []
        for letter, n in counts.items():
            for _ in range(int(n)):
                seconds = int(rng.integers(0, 86400))
                peak = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                    seconds=seconds
                )
                todays.append(sm.FlareEvent(_magnitude(rng, letter), peak))
        events.append(sorted(todays, key=lambda e: e.peak_time))

    rows = []
    for i in range(HISTORY - 1, total - 1):
        window = [e for k in range(i - HISTORY + 1, i + 1) for e in events[k]]
        row = sm.summary_from_raw(
            start + timedelta(days=i),
            window,
            list(sunspots[i - HISTORY + 1 : i + 1]),
            sunspot_number_std=round(float(np.sqrt(sunspots[i]) / 2), 1),
            sunspot_n_obs=20,
        )
        row.update(_next_day(events[i + 1]))
        rows.append(row)
    table = pd.DataFrame(rows)
    table["date"] = pd.to_datetime(table["date"])
    return Simulation(start, events, [float(v) for v in sunspots], table)


def _next_day(events: list[sm.FlareEvent]) -> dict[str, Any]:
    letters = [e.goes_class[0] for e in events]
    fluxes = [sm.parse_flare_class(e.goes_class)[2] for e in events]
    n = {c: letters.count(c) for c in ("C", "M", "X")}
    return {
        "max_xray_flux_next_24h": max(fluxes, default=0.0),
        "n_C_flares_next_24h": n["C"],
        "n_M_flares_next_24h": n["M"],
        "n_X_flares_next_24h": n["X"],
        "flare_C_or_above_next_24h": int(n["C"] + n["M"] + n["X"] > 0),
        "flare_M_or_above_next_24h": int(n["M"] + n["X"] > 0),
        "flare_X_next_24h": int(n["X"] > 0),
    }


def to_csv(table: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = table.copy()
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    out.to_csv(path, index=False)
    return path


def write_solar_data(data_dir: Path, sim: Simulation) -> Path:
    """``data_dir/solar_flare/daily_train.csv`` from a simulation; returns ``data_dir``."""
    to_csv(sim.table, data_dir / "solar_flare" / "daily_train.csv")
    return data_dir
