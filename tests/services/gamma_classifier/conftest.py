"""A gamma-classifier service under gunicorn, with a real Redis, trained on synthetic data.

The model is trained by the real ``vigie train`` command on a synthetic ``gamma/train.csv``, so
these tests need neither the real data set nor a model prepared beforehand. Per-asset settings
(``VIGIE_ASSET_CONFIG``) are written after training, because the boundary assets put their
thresholds exactly on the significance of designed batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from tests.services.gamma_classifier.synthetic import COLUMNS, gamma_frame, write_gamma_data
from tests.support.serving import Served, serve, trained_models_fixture
from vigie.models.card import ModelCard
from vigie.models.store import ModelStore
from vigie_services.gamma_classifier import classifier as clf
from vigie_services.gamma_classifier.significance import li_ma_significance

SERVICE = "gamma-classifier"
MAX_BATCH = 500
HADRONS_IN_BOUNDARY_BATCH = 100
STRICT_FPR = 0.01


Env = Served


trained_models = trained_models_fixture(SERVICE, lambda d: write_gamma_data(d, n=3000, seed=0))


@dataclass
class Trained:
    card: ModelCard
    model: clf.GammaModel  # as the service serves it: compiled estimator when there is one
    artifact: Path
    joblib_model: clf.GammaModel  # the reference


@pytest.fixture(scope="session")
def trained(trained_models: Path) -> Trained:
    store = ModelStore(trained_models)
    version = store.current_version(SERVICE)
    card = store.read_card(SERVICE, version)
    artifact = store.service_dir(SERVICE) / version / card.artifact.file
    serving = store.load_current(SERVICE).serving().model
    return Trained(card=card, model=serving, artifact=artifact, joblib_model=joblib.load(artifact))


@dataclass
class Pool:
    """Synthetic events the trained model classifies the same at the 5 % and the 1 % FPR cut."""

    gamma_like: list[dict[str, Any]]
    hadron_like: list[dict[str, Any]]
    hadron_fpr: float  # of the default cut, as the card records it
    gamma_efficiency: float


@pytest.fixture(scope="session")
def pool(trained: Trained) -> Pool:
    frame = gamma_frame(3000, seed=99)
    p = clf.p_gamma(trained.model, frame[COLUMNS].to_numpy())
    default = trained.card.thresholds["operating_point"]
    strict = trained.card.thresholds["operating_points"][f"hadron_fpr_{STRICT_FPR}"]
    rows = frame[COLUMNS].to_dict("records")
    # gamma-like: gamma at both cuts; hadron-like: hadron at both (the strict cut is higher)
    gamma_like = [r for r, q in zip(rows, p, strict=True) if q >= strict["probability_threshold"]]
    hadron_like = [r for r, q in zip(rows, p, strict=True) if q < default["probability_threshold"]]
    assert len(gamma_like) >= 60 and len(hadron_like) >= 2 * HADRONS_IN_BOUNDARY_BATCH
    return Pool(gamma_like, hadron_like, default["hadron_fpr"], default["gamma_efficiency"])


@dataclass
class Boundary:
    """Batches of ``hadrons`` hadron-like events plus k gamma-like ones around 3 and 5 sigma."""

    hadrons: int
    k3: int  # fewest gamma-like events reaching 3 sigma (k3 - 1 stays below)
    k5: int  # ... reaching 5 sigma
    s: dict[int, float]  # significance for k gamma-like events


def significance_for(pool: Pool, k: int, hadrons: int) -> float:
    alpha = pool.hadron_fpr / (1 - pool.hadron_fpr)
    return li_ma_significance(k, hadrons, alpha)


@pytest.fixture(scope="session")
def boundary(pool: Pool) -> Boundary:
    m = HADRONS_IN_BOUNDARY_BATCH
    s = {k: significance_for(pool, k, m) for k in range(0, 60)}
    k3 = min(k for k, v in s.items() if v >= 3.0)
    k5 = min(k for k, v in s.items() if v >= 5.0)
    assert s[k3 - 1] < 3.0 <= s[k3] and s[k5 - 1] < 5.0 <= s[k5]
    return Boundary(hadrons=m, k3=k3, k5=k5, s=s)


def asset_config(boundary: Boundary) -> dict[str, dict[str, Any]]:
    at3, at5 = boundary.s[boundary.k3], boundary.s[boundary.k5]
    return {
        SERVICE: {
            "STRICT-1": {"hadron_fpr": STRICT_FPR},
            "SENSITIVE-1": {"alerte_sigma": 1.0, "critique_sigma": 2.0},
            # thresholds exactly on the significance of the k3 / k5 batches
            "EXACT-1": {"alerte_sigma": at3, "critique_sigma": at5},
            # thresholds one float step above it: the same batches stay one level lower
            "EXACT-2": {
                "alerte_sigma": math.nextafter(at3, math.inf),
                "critique_sigma": math.nextafter(at5, math.inf),
            },
        }
    }


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, trained_models: Path, boundary: Boundary
) -> Iterator[Env]:
    """One running service (2 gunicorn workers) shared by a test module."""
    root = tmp_path_factory.mktemp("gamma-served")
    with serve(
        SERVICE, root, trained_models, sub="telescope", max_batch=MAX_BATCH,
        asset_config=asset_config(boundary)[SERVICE],
    ) as running:  # fmt: skip
        yield running


def as_values(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[r[c] for c in COLUMNS] for r in rows], dtype=float)
