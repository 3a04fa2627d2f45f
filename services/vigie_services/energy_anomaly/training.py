"""Training, validation and evaluation of the ``energy-anomaly`` model.

Validation (time ordered)
-------------------------
The last ``validation_days`` days of the data (365 when the data span at least 3 years, else a
third of the span) form the validation slice; the models are fitted on the days before it. A
validation day is scored with the real days before it as history (the history is past data, known
at prediction time). Everything reported in the card comes from this split:

* forecast: MAE, RMSE, R², MAPE (pooled over series) of each candidate — ``ridge``
  (standardised features), ``random_forest`` (as in the original project) and
  ``hist_gradient_boosting`` — and of two naive baselines, yesterday's total and the same weekday
  last week. The candidate with the lowest validation RMSE (= highest pooled R²) is kept;
* thresholds: the 99th / 99.9th percentiles of the anomaly score over the validation days
  without missing hours, stuck meter or shifted profile (out of sample, as the service will
  see new days);
* anomalies: :func:`data.inject_anomalies` (rate ``INJECT_RATE``, seed 0) on the validation
  slice; ROC AUC of the score, precision and recall at the ALERTE rule, overall and per kind (each
  kind against the untouched days).

The final model is then refitted on all the data (forecaster, Isolation Forest, series means);
residual scales and thresholds stay those measured out of sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor, IsolationForest, RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from vigie_services.energy_anomaly import clustering
from vigie_services.energy_anomaly import data as dt
from vigie_services.energy_anomaly import features as ft
from vigie_services.energy_anomaly import model as md
from vigie_services.energy_anomaly import scoring as sc

INJECT_RATE = 0.05
RESIDUAL_SCALE_FLOOR = 0.01
MIN_DAYS = 60
NORM_QUANTILE = 99.0


def candidates() -> dict[str, Any]:
    return {
        "ridge": make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
        "random_forest": RandomForestRegressor(
            n_estimators=120, min_samples_leaf=3, max_features=0.5, n_jobs=1, random_state=0
        ),
        "hist_gradient_boosting": HistGradientBoostingRegressor(
            max_iter=300, learning_rate=0.05, min_samples_leaf=20, l2_regularization=1.0,
            early_stopping=False, random_state=0,
        ),
    }  # fmt: skip


def describe(template: Any) -> dict[str, Any]:
    steps = [s for _, s in template.steps] if hasattr(template, "steps") else [template]
    params = {k: v for k, v in steps[-1].get_params().items() if _jsonable(v)}
    return {"steps": [type(s).__name__ for s in steps], "params": params}


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def forecast_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        "mae": float(mean_absolute_error(actual, predicted)),
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "r2": float(r2_score(actual, predicted)),
        "mape": float(mean_absolute_percentage_error(actual, predicted)),
    }


@dataclass
class Design:
    x: np.ndarray
    y: np.ndarray  # ratio target
    scale: np.ndarray
    actual: np.ndarray
    naive_yesterday: np.ndarray
    naive_week: np.ndarray
    profile: np.ndarray
    series: np.ndarray


def design(
    parts: dict[str, pd.DataFrame], means: dict[str, float], first_target: pd.Timestamp | None
) -> Design:
    """Features of every scorable day of ``parts`` (days >= ``first_target`` when given)."""
    xs, ys, sc, act, ny, nw, pf, sr = [], [], [], [], [], [], [], []
    for sid, part in parts.items():
        s = md.SeriesInput.from_frame(part)
        prep = md.prepare(s)
        x, scale = ft.forecast_features(s, prep, means[sid])
        prof = ft.profile_features(prep)
        totals = prep.totals[md.HISTORY_DAYS :]
        keep = np.ones(len(totals), dtype=bool)
        if first_target is not None:
            keep &= s.dates[md.HISTORY_DAYS :] >= first_target
        keep &= np.isfinite(totals) & (scale > 0)
        xs.append(x[keep])
        ys.append(totals[keep] / scale[keep])
        sc.append(scale[keep])
        act.append(totals[keep])
        ny.append(prep.totals[md.HISTORY_DAYS - 1 : -1][keep])
        nw.append(prep.totals[: -md.HISTORY_DAYS][keep])
        pf.append(prof[keep])
        sr.append(np.full(int(keep.sum()), sid))
    return Design(*(np.concatenate(a) for a in (xs, ys, sc, act, ny, nw, pf, sr)))


def _fit_iforest(profile: np.ndarray) -> tuple[IsolationForest, float, float]:
    forest = IsolationForest(n_estimators=200, random_state=0, n_jobs=1).fit(profile)
    raw = -forest.score_samples(profile)
    center = float(np.median(raw))
    scale = float(1.4826 * np.median(np.abs(raw - center))) or 1e-3
    return forest, center, scale


@dataclass
class TrainingResult:
    model: md.EnergyModel
    metrics: dict[str, Any]
    baselines: dict[str, Any]
    validation: dict[str, Any]
    hyperparameters: dict[str, Any]
    # validation days' features per compiled part, to check the compiled form on
    check_rows: dict[str, np.ndarray]


def _slice_with_history(part: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    return part[part.index >= start - pd.Timedelta(days=md.HISTORY_DAYS)]


def anomaly_metrics(scored: pd.DataFrame) -> dict[str, Any]:
    """ROC AUC / precision / recall of ``scored`` (from :func:`model.score_frame` on injected
    data), overall and per injected kind."""
    scored = scored[scored[dt.IS_ANOMALY].notna()]
    y = scored[dt.IS_ANOMALY].astype(int).to_numpy()
    flagged = (scored["level"] != "NORMAL").to_numpy()
    out: dict[str, Any] = {
        "roc_auc": float(roc_auc_score(y, scored["score"])) if 0 < y.sum() < len(y) else None,
        "precision": float(precision_score(y, flagged, zero_division=0)),
        "recall": float(recall_score(y, flagged, zero_division=0)),
        "false_alarm_rate": float(flagged[y == 0].mean()) if (y == 0).any() else None,
        "anomalies": int(y.sum()),
        "normal_days": int((y == 0).sum()),
        "per_kind": {},
    }
    if "anomaly_kind" in scored.columns:
        normal = y == 0
        for kind in dt.INJECTED_KINDS:
            mask = (scored["anomaly_kind"] == kind).to_numpy()
            if not mask.any():
                continue
            sub = mask | normal
            kinds_found = scored["kinds"].to_numpy()[mask]
            out["per_kind"][kind] = {
                "count": int(mask.sum()),
                "roc_auc": float(roc_auc_score(y[sub], scored["score"].to_numpy()[sub])),
                "recall": float(flagged[mask].mean()),
                "precision": float(
                    flagged[mask].sum() / max(flagged[mask].sum() + flagged[normal].sum(), 1)
                ),
                "kind_identified": float(np.mean([kind in k.split(",") for k in kinds_found])),
            }
    return out


def operating_points(scored: pd.DataFrame, clean_scores: np.ndarray) -> dict[str, Any]:
    """Precision / recall on injected data if ALERTE were at other quantiles of the clean
    validation scores (the data-quality kinds still alert): how the chosen quantile was picked."""
    scored = scored[scored[dt.IS_ANOMALY].notna()]
    y = scored[dt.IS_ANOMALY].astype(int).to_numpy()
    quality = ((scored["n_missing"] > 0) | scored["stuck"] | scored["shifted"]).to_numpy()
    out = {}
    for q in (95.0, 97.5, 98.0, 99.0, 99.5, 99.9):
        thr = float(np.percentile(clean_scores, q))
        flagged = (scored["score"].to_numpy() >= thr) | quality
        out[str(q)] = {
            "threshold": round(thr, 3),
            "precision": round(float(precision_score(y, flagged, zero_division=0)), 4),
            "recall": round(float(recall_score(y, flagged, zero_division=0)), 4),
            "false_alarm_rate": round(float(flagged[y == 0].mean()), 4),
        }
    return out


def fit(frame: pd.DataFrame, progress: Callable[[str], None] = lambda _m: None) -> TrainingResult:
    """Train on a :func:`data.load_frame` frame (all series)."""
    parts = dt.split_series(frame)
    names = {
        str(s): (str(g["operator"].iloc[0]), str(g["region"].iloc[0]))
        for s, g in frame.groupby("series")
    }
    end = frame["date"].max()
    span = (end - frame["date"].min()).days + 1
    if span < MIN_DAYS:
        raise ValueError(f"the data span {span} days; training needs at least {MIN_DAYS}")
    validation_days = 365 if span >= 3 * 365 else span // 3
    val_start = end - pd.Timedelta(days=validation_days - 1)
    progress(
        f"{len(parts)} series, {len(frame)} rows; validation {val_start:%Y-%m-%d} -> "
        f"{end:%Y-%m-%d} ({validation_days} days)"
    )
    train_parts = {s: p[p.index < val_start] for s, p in parts.items()}
    train_parts = {s: p for s, p in train_parts.items() if len(p) > md.HISTORY_DAYS + 14}
    val_parts = {s: _slice_with_history(parts[s], val_start) for s in train_parts}
    train_means = {s: float(np.nanmean(p["daily"].fillna(p[list(dt.HOURS)].sum(axis=1))))
                   for s, p in train_parts.items()}  # fmt: skip
    tr = design(train_parts, train_means, None)
    va = design(val_parts, train_means, val_start)
    progress(f"{len(tr.y)} training days, {len(va.y)} validation days")

    with threadpool_limits(limits=1):
        metrics: dict[str, Any] = {}
        fitted: dict[str, Any] = {}
        for family, template in candidates().items():
            progress(f"fitting {family}")
            est = clone(template).fit(tr.x, tr.y)
            fitted[family] = est
            pred = sc.predict_forecast(est, va.x, va.scale)
            metrics[family] = forecast_metrics(va.actual, pred)
            progress(f"{family}: validation " + ", ".join(f"{k} {v:.4g}" for k, v in
                                                          metrics[family].items()))  # fmt: skip
        baselines = {
            "yesterday": forecast_metrics(va.actual, va.naive_yesterday),
            "same_day_last_week": forecast_metrics(va.actual, va.naive_week),
        }
        chosen = min(metrics, key=lambda f: metrics[f]["rmse"])
        progress(f"chosen: {chosen}")
        pred = sc.predict_forecast(fitted[chosen], va.x, va.scale)
        rel = (va.actual - pred) / np.maximum(pred, 1e-6)
        per_series: dict[str, dict[str, float]] = {}
        res_scale: dict[str, float] = {}
        for sid in train_parts:
            m = va.series == sid
            r = rel[m]
            res_scale[sid] = max(
                float(1.4826 * np.median(np.abs(r - np.median(r)))) if len(r) else 0.05,
                RESIDUAL_SCALE_FLOOR,
            )
            if m.sum() > 1:
                per_series[sid] = forecast_metrics(va.actual[m], pred[m])

        forest, center, pscale = _fit_iforest(tr.profile)
        stats = {s: md.SeriesStats(names[s][0], names[s][1], train_means[s], res_scale[s])
                 for s in train_parts}  # fmt: skip
        val_model = md.EnergyModel(chosen, fitted[chosen], forest, center, pscale, stats,
                                   alerte=np.inf, critique=np.inf)  # fmt: skip
        val_frame = frame[frame["date"] >= val_start - pd.Timedelta(days=md.HISTORY_DAYS)]
        val_frame = val_frame[val_frame["series"].isin(list(stats))]
        clean = sc.score_frame(val_model, val_frame)
        ok = (clean["n_missing"] == 0) & ~clean["stuck"] & ~clean["shifted"]
        # balance the two components: each divided by its 99th percentile on clean days
        residual_norm = float(np.percentile(clean[ok]["residual_z"].abs(), NORM_QUANTILE))
        profile_norm = float(np.percentile(clean[ok]["profile_z"].clip(lower=0), NORM_QUANTILE))
        # both in profile units: the residual is scaled so its 99th percentile matches
        residual_norm, profile_norm = residual_norm / profile_norm, 1.0
        val_model.residual_norm, val_model.profile_norm = residual_norm, profile_norm
        clean = sc.score_frame(val_model, val_frame)
        complete = clean[ok]["score"].to_numpy()
        alerte = float(np.percentile(complete, md.ALERTE_QUANTILE))
        critique = float(max(np.percentile(complete, md.CRITIQUE_QUANTILE), alerte * 1.05))
        progress(f"thresholds: ALERTE {alerte:.2f}, CRITIQUE {critique:.2f} (score units)")
        val_model.alerte, val_model.critique = alerte, critique
        injected = dt.inject_anomalies(val_frame.reset_index(drop=True), INJECT_RATE, seed=0)
        scored_injected = sc.score_frame(val_model, injected)
        anomaly = anomaly_metrics(scored_injected)
        anomaly["operating_points"] = operating_points(scored_injected, complete)
        progress(
            f"injected anomalies: ROC AUC {anomaly['roc_auc']:.3f}, precision "
            f"{anomaly['precision']:.3f}, recall {anomaly['recall']:.3f}"
        )

        progress(f"refitting {chosen} and the isolation forest on all the data")
        all_parts = {s: parts[s] for s in stats}
        all_means = {s: float(np.nanmean(p["daily"].fillna(p[list(dt.HOURS)].sum(axis=1))))
                     for s, p in all_parts.items()}  # fmt: skip
        full = design(all_parts, all_means, None)
        final_est = clone(candidates()[chosen]).fit(full.x, full.y)
        forest, center, pscale = _fit_iforest(full.profile)
    for s, st in stats.items():
        st.mean_daily_mwh = all_means[s]
    profiles = {}
    for s, p in all_parts.items():
        prof = md.prepare(md.SeriesInput.from_frame(p)).profiles
        profiles[s] = prof
    clusters = clustering.cluster_profiles(clustering.mean_profiles(profiles))
    final = md.EnergyModel(chosen, final_est, forest, center, pscale, stats, alerte, critique,
                           clusters=clusters, residual_norm=residual_norm,
                           profile_norm=profile_norm)  # fmt: skip
    validation = {
        "method": "time-ordered holdout: the last days of every series validate",
        "train_start": f"{frame['date'].min():%Y-%m-%d}",
        "validation_start": f"{val_start:%Y-%m-%d}",
        "validation_end": f"{end:%Y-%m-%d}",
        "validation_days": validation_days,
        "train_rows": len(tr.y),
        "validation_rows": len(va.y),
        "injection": {"rate": INJECT_RATE, "seed": 0, "kinds": list(dt.INJECTED_KINDS)},
    }
    hyper = {
        "chosen_candidate": chosen,
        "selection": "lowest pooled validation RMSE",
        "candidates": {f: describe(t) for f, t in candidates().items()},
        "history_days": md.HISTORY_DAYS,
        "target": "daily total / mean total of the previous history_days days",
        "isolation_forest": {"n_estimators": 200, "random_state": 0,
                             "features": md.PROFILE_FEATURES},
        "missing_weight": md.MISSING_WEIGHT,
        "stuck_weight": md.STUCK_WEIGHT,
        "shift_weight": md.SHIFT_WEIGHT,
    }  # fmt: skip
    return TrainingResult(
        model=final,
        metrics={
            "forecast": metrics[chosen],
            "forecast_by_candidate": metrics,
            "forecast_by_series": per_series,
            "anomaly": anomaly,
        },
        baselines=baselines,
        validation=validation,
        hyperparameters=hyper,
        check_rows={"forecaster": va.x, "isolation_forest": va.profile},
    )


def evaluate(model: md.EnergyModel, frame: pd.DataFrame) -> dict[str, float]:
    """Metric keys of design.md section 7 on a :func:`data.load_frame` frame.

    Forecast metrics use the scored days that are not flagged ``is_anomaly`` = 1 (all of them
    when the column is absent); ``forecast_mape`` is a fraction (0.05 = 5 %). The anomaly metrics
    use every scored day with an ``is_anomaly`` value: ROC AUC of the score, precision and recall
    of "level above NORMAL" (the ALERTE rule). Series unknown to the model are skipped."""
    scored = sc.score_frame(model, frame)
    if scored.empty:
        known = ", ".join(sorted(model.series))
        raise ValueError(
            f"no series of the file is known to the model with more than {md.HISTORY_DAYS} "
            f"days (known: {known})"
        )
    normal = scored
    if dt.IS_ANOMALY in scored.columns:
        normal = scored[scored[dt.IS_ANOMALY].fillna(0) == 0]
    normal = normal[normal["n_missing"] < 24]
    m = forecast_metrics(normal["actual"].to_numpy(), normal["forecast"].to_numpy())
    out = {f"forecast_{k}": v for k, v in m.items()}
    if dt.IS_ANOMALY in scored.columns:
        a = anomaly_metrics(scored)
        out["anomaly_roc_auc"] = a["roc_auc"] if a["roc_auc"] is not None else float("nan")
        out["anomaly_precision"] = a["precision"]
        out["anomaly_recall"] = a["recall"]
    return out
