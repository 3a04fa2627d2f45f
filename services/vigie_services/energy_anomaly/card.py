"""The model card of an energy-anomaly training run (design.md section 6)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigie.models.training import describe_file
from vigie_services.energy_anomaly import model as md

if TYPE_CHECKING:
    import pandas as pd

    from vigie_services.energy_anomaly.training import TrainingResult

TARGET = "daily_mwh"


def card_fields(
    result: TrainingResult, frame: pd.DataFrame, path: Path, bundle: Any
) -> dict[str, Any]:
    """Every card field the service knows, from the fit of ``frame`` (read from ``path``)."""
    model = result.model
    return {
        "training_data": [
            describe_file(
                path,
                len(frame),
                f"{frame['date'].min():%Y-%m-%d}",
                f"{frame['date'].max():%Y-%m-%d}",
            )
        ],
        "features": _features_spec(),
        "targets": [{"name": TARGET, "unit": "MWh"}],
        "history_days": md.HISTORY_DAYS,
        "series": {
            sid: {
                "operator": st.operator,
                "region": st.region,
                "mean_daily_mwh": round(st.mean_daily_mwh, 3),
                "residual_scale": round(st.residual_scale, 5),
            }
            for sid, st in model.series.items()
        },
        "metrics": result.metrics,
        "baselines": result.baselines,
        "validation": result.validation,
        "thresholds": {
            "unit": "score",
            "alerte": model.alerte,
            "critique": model.critique,
            "quantiles": {"alerte": md.ALERTE_QUANTILE, "critique": md.CRITIQUE_QUANTILE},
            "residual_norm": model.residual_norm,
            "profile_norm": model.profile_norm,
            "rule": (
                "score >= critique -> CRITIQUE; score >= alerte, missing hours, stuck "
                "meter or shifted profile -> ALERTE; else NORMAL. score = "
                "hypot(residual_z / residual_norm, max(profile_z, 0) / profile_norm) + 4 x "
                "missing hours + 8 x stuck meter + 8 x shifted profile; "
                "thresholds = 99th / 99.9th percentiles of the validation-year scores"
            ),
        },
        "clusters": {
            "kmeans": model.clusters["kmeans"]["assignments"],
            "dbscan": model.clusters["dbscan"]["assignments"],
            "kmeans_k": model.clusters["kmeans"]["parameters"]["n_clusters"],
            "dbscan_eps": model.clusters["dbscan"]["parameters"]["eps"],
        },
        "hyperparameters": result.hyperparameters,
        "compiled": bundle,
    }


def _features_spec() -> list[dict[str, str]]:
    units = {"level": "ratio (scale / series mean daily MWh)"}
    spec = [
        {"name": n, "unit": units.get(n, "ratio (MWh / mean of the 7 previous days)")}
        for n in md.FORECAST_FEATURES
        if n.startswith("lag_") or n == "level"
    ]
    spec += [{"name": n, "unit": "flag or sine/cosine"} for n in md.CALENDAR_FEATURES]
    spec += [{"name": n, "unit": "profile feature"} for n in md.PROFILE_FEATURES]
    return spec
