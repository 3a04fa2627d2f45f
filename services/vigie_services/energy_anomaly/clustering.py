"""Clustering of the series by their normalised daily profiles (served at ``GET /v1/clusters``).

Each series is described by its mean normalised 24-h profile over the training data (hour
values / the day's total, averaged over days, times 24 so that a flat profile is 1 everywhere).

* k-means (``n_init=10``, ``random_state=0``): k from 2 to ``min(6, n_series - 1)`` chosen by the
  best silhouette score (a single cluster when there are fewer than 3 series);
* DBSCAN (``min_samples=2``, Euclidean): ``eps`` = 1.5 x the median distance of a series to its
  nearest other series; label ``-1`` = noise (a series unlike any other).

Centroids are given as 24 hourly values in the same unit (1 = the day's mean hour).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.cluster import DBSCAN, KMeans
from sklearn.metrics import pairwise_distances, silhouette_score

from vigie_services.energy_anomaly import data as dt

FloatArray = npt.NDArray[np.float64]
MAX_K = 6
DBSCAN_MIN_SAMPLES = 2
DBSCAN_EPS_FACTOR = 1.5


def _rounded(values: FloatArray) -> list[float]:
    return [round(float(v), 4) for v in values]


def cluster_profiles(profiles: dict[str, FloatArray]) -> dict[str, Any]:
    """k-means and DBSCAN on ``{series_id: mean normalised profile (24,)}``; JSON-ready."""
    ids = sorted(profiles)
    x = np.array([profiles[s] for s in ids], dtype=np.float64)
    n = len(ids)
    result: dict[str, Any] = {
        "features": "mean normalised 24-h profile (hour / daily mean hour), hours 00:00..23:00",
        "hours": list(dt.HOURS),
        "profiles": {s: _rounded(x[i]) for i, s in enumerate(ids)},
    }

    # k-means, k by silhouette
    tried: dict[str, float] = {}
    best_k, best_labels = 1, np.zeros(n, dtype=int)
    if n >= 3:
        best_sil = -2.0
        for k in range(2, min(MAX_K, n - 1) + 1):
            labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(x)
            if len(set(labels)) < 2:
                continue
            sil = float(silhouette_score(x, labels))
            tried[str(k)] = round(sil, 4)
            if sil > best_sil:
                best_sil, best_k, best_labels = sil, k, labels
    km = KMeans(n_clusters=best_k, n_init=10, random_state=0).fit(x) if n >= best_k else None
    if km is not None and best_k > 1:
        best_labels = km.labels_
    centroids = km.cluster_centers_ if km is not None else x.mean(axis=0, keepdims=True)
    result["kmeans"] = {
        "parameters": {"n_clusters": best_k, "n_init": 10, "random_state": 0,
                       "selection": "best silhouette over k = 2..min(6, n_series - 1)",
                       "silhouette_by_k": tried},
        "assignments": {s: int(best_labels[i]) for i, s in enumerate(ids)},
        "clusters": [
            {"cluster": c, "members": [s for i, s in enumerate(ids) if best_labels[i] == c],
             "centroid": _rounded(centroids[c])}
            for c in range(best_k)
        ],
    }  # fmt: skip

    # DBSCAN, eps from nearest-neighbour distances
    if n >= 2:
        dist = pairwise_distances(x)
        np.fill_diagonal(dist, np.inf)
        eps = float(DBSCAN_EPS_FACTOR * np.median(dist.min(axis=1)))
    else:
        eps = 1.0
    eps = max(eps, 1e-6)
    labels = DBSCAN(eps=eps, min_samples=DBSCAN_MIN_SAMPLES).fit_predict(x)
    result["dbscan"] = {
        "parameters": {"eps": round(eps, 6), "min_samples": DBSCAN_MIN_SAMPLES,
                       "metric": "euclidean",
                       "eps_rule": "1.5 x median distance of a series to its nearest other series"},
        "assignments": {s: int(labels[i]) for i, s in enumerate(ids)},
        "clusters": [
            {"cluster": int(c), "members": [s for i, s in enumerate(ids) if labels[i] == c],
             "centroid": _rounded(x[labels == c].mean(axis=0))}
            for c in sorted(set(labels.tolist()))
        ],
        "noise": [s for i, s in enumerate(ids) if labels[i] == -1],
    }  # fmt: skip
    return result


def mean_profiles(profiles_by_series: dict[str, FloatArray]) -> dict[str, FloatArray]:
    """``{series: (n_days, 24) normalised profiles}`` -> mean profile x 24 per series."""
    return {s: np.asarray(p.mean(axis=0) * 24) for s, p in profiles_by_series.items()}
