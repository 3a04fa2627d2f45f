"""A sixth, toy prediction service: nothing but its declaration, as a new service would be.

``tank-level`` forecasts a water tank's level one step ahead from its level and inflow (a
least-squares line fitted on a CSV the tests write), with per-asset thresholds. It proves the
runtime and the contract suite need nothing else from a service.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from vigie.contract.batch import Batch, LevelDetail, Outputs, Points, Scores
from vigie.contract.levels import Level
from vigie.contract.service import (
    MeasurementBase,
    PredictionService,
    Progress,
    StrictModel,
    Target,
    TrainedModel,
)
from vigie.models.training import data_files, describe_file

INPUTS = ("level_m", "inflow_m3_h")
DATA_FILE = "tank/train.csv"


class TankMeasurement(MeasurementBase):
    level_m: float = Field(ge=0, le=20, description="water level, m")
    inflow_m3_h: float = Field(ge=0, le=500, description="inflow, m3/h")


class TankPrediction(BaseModel):
    level_next_m: float = Field(description="level one step ahead, m")


class TankSettings(StrictModel):
    alerte_m: float = Field(15.0, gt=0, le=20, description="ALERTE from this level, m")
    critique_m: float = Field(18.0, gt=0, le=20, description="CRITIQUE from this level, m")


class TankLevelService(PredictionService[TankMeasurement, TankSettings]):
    name = "tank-level"
    title = "Tank level (toy)"
    Measurement = TankMeasurement
    Prediction = TankPrediction
    AssetSettings = TankSettings
    target = Target("level_m", "m", "observed water level", bounds=(0.0, 20.0))
    rows_independent = True

    def infer(self, batch: Batch[TankMeasurement]) -> Outputs:
        coef = self.model.model["coef"]
        return {"level_next_m": batch.matrix(INPUTS) @ coef[:2] + coef[2]}

    def present(self, batch: Batch[TankMeasurement], outputs: Outputs) -> Scores:
        limits = self.assets.for_asset(batch.asset_id)
        values = outputs["level_next_m"].tolist()
        levels = [
            Level.CRITIQUE if v >= limits.critique_m else Level.ALERTE if v >= limits.alerte_m
            else Level.NORMAL
            for v in values
        ]  # fmt: skip

        def explain(i: int) -> LevelDetail:
            threshold = limits.critique_m if levels[i] is Level.CRITIQUE else limits.alerte_m
            return LevelDetail(values[i], "m", threshold, f"level forecast {values[i]:.2f} m")

        return Scores(
            levels=levels,
            items=[{"level_next_m": v} for v in values],
            explain=explain,
            points=Points.one_per_row(self.target.name, "h1", batch.times, values),
        )

    def train(self, data_dir: Path, progress: Progress) -> TrainedModel:
        (path,) = data_files(data_dir, DATA_FILE)
        x, y = read(path)
        design = np.column_stack([x, np.ones(len(x))])
        coef = np.linalg.lstsq(design[:-1], y[1:], rcond=None)[0]
        mae = float(np.mean(np.abs(design[:-1] @ coef - y[1:])))
        progress(f"fitted on {len(x)} rows")
        card: dict[str, Any] = {
            "training_data": [describe_file(path, len(x))],
            "features": [{"name": "level_m", "unit": "m"}, {"name": "inflow_m3_h", "unit": "m3/h"}],
            "targets": [{"name": "level_m(t+1)", "unit": "m"}],
            "metrics": {"mae": mae},
            "baselines": {"persistence": {"mae": float(np.mean(np.abs(y[1:] - y[:-1])))}},
            "thresholds": {"unit": "m", "defaults": TankSettings().model_dump()},
        }
        return TrainedModel(model={"coef": coef}, card=card)

    def evaluate(self, model: Any, data: Path, asset: str | None) -> dict[str, Any]:
        x, y = read(data)
        predicted = np.column_stack([x, np.ones(len(x))]) @ model["coef"]
        return {"mae": float(np.mean(np.abs(predicted[:-1] - y[1:])))}


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open() as fh:
        rows = [[float(r[c]) for c in INPUTS] for r in csv.DictReader(fh)]
    x = np.array(rows)
    return x, x[:, 0]


def write_training_data(data_dir: Path, rows: int = 200, seed: int = 3) -> Path:
    """A synthetic tank: the level follows the inflow with some noise."""
    rng = np.random.default_rng(seed)
    path = data_dir / DATA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    level = 8.0
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(INPUTS)
        for _ in range(rows):
            inflow = float(rng.uniform(0, 100))
            out.writerow([round(level, 4), round(inflow, 4)])
            level = min(19.5, max(0.5, 0.9 * level + 0.02 * inflow + rng.normal(0, 0.1)))
    return path


def app() -> Any:
    """The gunicorn factory of the toy (no registry lists it): what ``app_for`` does for the
    registered services."""
    from vigie.obs.logs import configure_logging
    from vigie.serve.app import create_app
    from vigie.settings import VigieSettings

    settings = VigieSettings()
    configure_logging(settings, TankLevelService.name)
    return create_app(TankLevelService(settings), settings)


def train(root: Path) -> Path:
    """A models dir holding a toy model trained by the runtime's template on synthetic data."""
    from vigie.models.store import ModelStore
    from vigie.models.training import run_training
    from vigie.settings import VigieSettings

    write_training_data(root / "data")
    settings = VigieSettings(models_dir=root / "models", var_dir=root / "var")
    service = TankLevelService(settings)
    trained = run_training(service, root / "data", lambda _m: None)
    ModelStore(settings.models_dir).publish(service.name, trained.model, trained.card)
    return settings.models_dir
