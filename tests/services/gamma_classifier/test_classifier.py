"""The classifier core: features, metrics, operating points, model comparison (synthetic data)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from tests.services.gamma_classifier.synthetic import COLUMNS, gamma_frame
from vigie_services.gamma_classifier import classifier as clf
from vigie_services.gamma_classifier import data, fitting, metrics
from vigie_services.gamma_classifier import features as feats
from vigie_services.gamma_classifier.candidates import (
    BASE_CANDIDATES,
    CANDIDATES,
    VOTES,
    base_candidates,
    make_estimator,
)
from vigie_services.gamma_classifier.operating_point import operating_point

EVENT = {
    "fLength": 40.0, "fWidth": 10.0, "fSize": 3.0, "fConc": 0.4, "fConc1": 0.25,
    "fAsym": 20.0, "fM3Long": -12.0, "fM3Trans": 4.5, "fAlpha": 30.0, "fDist": 200.0,
}  # fmt: skip


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    return data.events_from_frame(gamma_frame(900, seed=5))


@pytest.fixture(scope="module")
def result(small: tuple[np.ndarray, np.ndarray]) -> fitting.TrainingResult:
    return fitting.fit(*small)


def test_columns_match_the_data_file() -> None:
    assert list(feats.COLUMNS) == COLUMNS
    assert [f["name"] for f in feats.FEATURES[:10]] == COLUMNS
    assert all(f["unit"] for f in feats.FEATURES)
    assert metrics.METRIC_KEYS == (
        "accuracy", "f1", "roc_auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.05", "tpr_at_fpr_0.1",
    )  # fmt: skip


def test_features_by_hand() -> None:
    row = feats.features([[EVENT[c] for c in COLUMNS]])[0]
    assert row.shape == (len(feats.FEATURES),)
    f = dict(zip([x["name"] for x in feats.FEATURES], row, strict=True))
    assert f["fLength"] == 40.0 and f["fDist"] == 200.0  # the inputs are kept as they are
    assert f["log10_length"] == pytest.approx(math.log10(40))
    assert f["log10_width"] == pytest.approx(math.log10(11))
    assert f["width_over_length"] == pytest.approx(0.25)
    assert f["length_per_size"] == pytest.approx(math.log10(40) - 3)
    assert f["miss"] == pytest.approx(100.0)  # 200 mm * sin 30 degrees
    assert f["disp"] == pytest.approx(200 * math.cos(math.radians(30)))
    assert f["conc1_over_conc"] == pytest.approx(0.625)
    assert f["log10_conc_phe"] == pytest.approx(math.log10(0.4 * 1000))  # 400 phe in two pixels
    assert f["log10_density"] == pytest.approx(3 - math.log10(40 * 11))
    assert f["abs_m3long_over_length"] == pytest.approx(0.3)


def test_features_are_per_event_and_finite_at_the_bounds() -> None:
    frame = gamma_frame(50, seed=1)
    values = frame[COLUMNS].to_numpy()
    batch = feats.features(values)
    np.testing.assert_array_equal(feats.features(values[7:8])[0], batch[7])
    edge = [[1e-6, 0.0, 1e-6, 1e-6, 0.0, -1000, -1000, -1000, 90.0, 0.0]]
    assert np.isfinite(feats.features(edge)).all()
    with pytest.raises(ValueError, match="NaN"):
        feats.features([[*[1.0] * 9, math.nan]])
    with pytest.raises(ValueError, match="shape"):
        feats.features([[1.0, 2.0]])


def test_tpr_at_fpr_by_hand() -> None:
    # 4 hadrons, 4 gammas; scores sorted: h .9, g .8, g .7, h .6, g .5, g .4, h .3, h .2
    y = [0, 1, 1, 0, 1, 1, 0, 0]
    p = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    assert metrics.tpr_at_fpr(y, p, 0.0) == 0.0  # any cut keeping a gamma lets the .9 hadron in
    assert metrics.tpr_at_fpr(y, p, 0.25) == 0.5  # cut at .7: 1 hadron of 4, 2 gammas of 4
    assert metrics.tpr_at_fpr(y, p, 0.5) == 1.0  # cut at .4
    out = metrics.scores(y, p)
    assert set(out) == set(metrics.METRIC_KEYS)
    # p >= 0.5 calls the first five gamma: 3 of them are, and 2 of the last three are hadrons
    assert out["accuracy"] == 5 / 8
    assert out["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))  # TP 3, FP 2, FN 1
    # gamma above hadron in 3 + 3 + 2 + 2 of the 16 pairs
    assert out["roc_auc"] == pytest.approx(10 / 16)
    with pytest.raises(ValueError, match="both classes"):
        metrics.scores([1, 1], [0.2, 0.9])


def test_operating_point_by_hand() -> None:
    hadrons = np.arange(100) / 100  # 0.00 .. 0.99
    gammas = np.array([0.5, 0.96, 0.975, 0.99, 1.0])
    cut = operating_point(hadrons, gammas, 0.05)
    # 5 hadrons may pass (0.95..0.99): the cut sits between 0.94 and 0.95
    assert cut.threshold == pytest.approx(0.945)
    assert cut.hadron_fpr == pytest.approx(0.05)
    assert cut.gamma_efficiency == pytest.approx(0.8)
    assert operating_point(hadrons, gammas, 0.049).hadron_fpr == pytest.approx(0.04)
    with pytest.raises(ValueError, match="below what 100 validation hadrons"):
        operating_point(hadrons, gammas, 0.005)
    with pytest.raises(ValueError, match="tied"):
        operating_point(np.zeros(100), gammas, 0.05)


def test_load_events_checks_the_file(tmp_path: Path) -> None:
    frame = gamma_frame(20, seed=2)
    good = tmp_path / "good.csv"
    frame.to_csv(good, index=False)
    values, y = data.load_events(good)
    assert values.shape == (20, 10) and set(np.unique(y)) <= {0, 1}
    assert y.sum() == (frame["class"] == "g").sum()

    frame.drop(columns="fAlpha").to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ValueError, match="missing column"):
        data.load_events(tmp_path / "a.csv")
    bad = frame.copy()
    bad.loc[3, "class"] = "gamma"
    bad.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ValueError, match="row 3"):
        data.load_events(tmp_path / "b.csv")
    bad = frame.astype({"fSize": object})
    bad.loc[4, "fSize"] = "big"
    bad.to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(ValueError, match="row 4"):
        data.load_events(tmp_path / "c.csv")


def test_the_candidate_names_are_those_of_the_estimators() -> None:
    # CANDIDATES is spelled out so that importing the module builds no scikit-learn estimator
    assert tuple(base_candidates()) == BASE_CANDIDATES
    assert (*BASE_CANDIDATES, *VOTES) == CANDIDATES
    for name in CANDIDATES:
        assert make_estimator(name) is not None


def test_fit_compares_every_candidate_and_keeps_the_best_auc(
    result: fitting.TrainingResult,
) -> None:
    candidates = result.metrics["candidates"]
    assert set(candidates) == set(CANDIDATES) >= {
        "logistic_regression", "random_forest", "hist_gradient_boosting",
    }  # fmt: skip
    for name, m in candidates.items():
        for part in ("cross_validation", "cross_validation_std", "holdout"):
            assert set(m[part]) == set(metrics.METRIC_KEYS), (name, part)
        assert {"hadron_fpr", "gamma_efficiency"} <= set(m["holdout_at_operating_point"])
    best = max(candidates, key=lambda n: candidates[n]["cross_validation"]["roc_auc"])
    assert result.chosen == best == result.model.family
    assert result.metrics["holdout"]["roc_auc"] > 0.9  # separable synthetic classes
    op = result.thresholds["operating_point"]
    assert op["target_hadron_fpr"] == 0.05 and op["hadron_fpr"] <= 0.05
    assert op["gamma_efficiency"] > op["hadron_fpr"]
    assert set(result.thresholds["operating_points"]) == {
        "hadron_fpr_0.01", "hadron_fpr_0.05", "hadron_fpr_0.1",
    }  # fmt: skip
    assert result.model.operating_point().threshold == op["probability_threshold"]


def test_the_model_scores_probabilities(
    result: fitting.TrainingResult, small: tuple[np.ndarray, np.ndarray]
) -> None:
    values, y = small
    p = clf.p_gamma(result.model, values)
    assert p.shape == (len(y),) and ((p >= 0) & (p <= 1)).all()
    assert p[y == 1].mean() > p[y == 0].mean()
    assert set(clf.evaluate(result.model, values, y)) == set(metrics.METRIC_KEYS)
    with pytest.raises(TypeError):
        clf.p_gamma(object(), values)


def test_soft_vote_is_the_mean_of_its_members(small: tuple[np.ndarray, np.ndarray]) -> None:
    # fit() scores the vote from its members' scores: that must be what the fitted vote computes
    values, y = small
    x = feats.features(values)
    vote = clone(make_estimator("soft_vote")).fit(x[:600], y[:600])
    members = [
        clone(make_estimator(m)).fit(x[:600], y[:600]).predict_proba(x[600:])[:, 1]
        for m in VOTES["soft_vote"]
    ]
    np.testing.assert_allclose(vote.predict_proba(x[600:])[:, 1], np.mean(members, axis=0))


def test_fit_needs_both_classes() -> None:
    values, y = data.events_from_frame(gamma_frame(400, seed=3, gamma_fraction=0.97))
    with pytest.raises(ValueError, match="at least 50 events of each class"):
        fitting.fit(values, y)
