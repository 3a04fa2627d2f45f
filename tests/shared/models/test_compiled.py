"""vigie.models.compiled with the real onnxruntime on synthetic data: every converter agrees with
scikit-learn, predictors answer with scikit-learn's shapes, disagreement and unconvertible
estimators are refused with the reason.

The end of this module holds the checks every service's ``test_compiled.py`` runs on its model
trained by ``vigie train`` (card entries, a tampered file over HTTP, a card without a compiled
form)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.support.servers import RedisServer, ServiceProcess
from tests.support.serving import make_served
from vigie.models.compiled import (
    MAX_CHECK_ROWS,
    CompiledPredictor,
    Part,
    check_rows,
    compile_part,
    compile_parts,
    to_onnx,
)
from vigie.models.store import NO_COMPILED_FORM, ModelStore

RNG = np.random.default_rng(0)
X = RNG.normal(size=(1500, 8))
Y_CLASS = (X[:, 0] + X[:, 1] ** 2 + RNG.normal(0, 0.5, len(X)) > 1).astype(int)
Y_REG = 3 * X[:, 0] + np.sin(X[:, 1]) + 0.1 * X[:, 2] * X[:, 3]
HELD_OUT = np.random.default_rng(1).normal(size=(400, 8))


def _hgb_classifier(**kw: Any) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=60, early_stopping=False, random_state=0, **kw)


@functools.cache
def estimators() -> dict[str, Any]:
    """Fitted on first use (the services' tests import this module for its helpers only)."""
    return {
        "random_forest_classifier": RandomForestClassifier(30, random_state=0).fit(X, Y_CLASS),
        "hist_gradient_boosting_classifier": _hgb_classifier(max_features=0.5).fit(X, Y_CLASS),
        "monotone_hist_gradient_boosting": _hgb_classifier(monotonic_cst=[1] + [0] * 7).fit(
            X, Y_CLASS
        ),
        "soft_vote": VotingClassifier(
            [("rf", RandomForestClassifier(20, random_state=0)), ("hgb", _hgb_classifier())],
            voting="soft",
        ).fit(X, Y_CLASS),
        "weighted_soft_vote": VotingClassifier(
            [("rf", RandomForestClassifier(20, random_state=0)), ("hgb", _hgb_classifier())],
            voting="soft",
            weights=[1, 3],
        ).fit(X, Y_CLASS),
        "logistic_pipeline": make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y_CLASS),
        "random_forest_regressor": RandomForestRegressor(
            30, min_samples_leaf=3, max_features=0.5, random_state=0
        ).fit(X, Y_REG),
        "extra_trees_regressor": ExtraTreesRegressor(20, random_state=0).fit(X, Y_REG),
        "hist_gradient_boosting_regressor": HistGradientBoostingRegressor(
            max_iter=80, early_stopping=False, random_state=0
        ).fit(X, Y_REG),
        "absolute_error_boosting": HistGradientBoostingRegressor(
            loss="absolute_error", max_iter=80, early_stopping=False, random_state=0
        ).fit(X, Y_REG),
        "ridge_pipeline": make_pipeline(StandardScaler(), Ridge()).fit(X, Y_REG),
        "isolation_forest": IsolationForest(n_estimators=100, random_state=0).fit(X[:, :6]),
        "isolation_forest_feature_subsets": IsolationForest(
            n_estimators=50, max_features=0.5, random_state=0
        ).fit(X[:, :6]),
    }


METHOD = {
    **dict.fromkeys(
        [
            "random_forest_classifier",
            "hist_gradient_boosting_classifier",
            "monotone_hist_gradient_boosting",
            "soft_vote",
            "weighted_soft_vote",
            "logistic_pipeline",
        ],
        "predict_proba",
    ),
    **dict.fromkeys(
        [
            "random_forest_regressor",
            "extra_trees_regressor",
            "hist_gradient_boosting_regressor",
            "absolute_error_boosting",
            "ridge_pipeline",
        ],
        "predict",
    ),
    "isolation_forest": "score_samples",
    "isolation_forest_feature_subsets": "score_samples",
}


def rows_for(name: str) -> np.ndarray:
    return HELD_OUT[:, :6] if name.startswith("isolation") else HELD_OUT


@pytest.mark.parametrize("name", sorted(METHOD))
def test_compiled_form_agrees_with_scikit_learn(name: str) -> None:
    est, rows = estimators()[name], rows_for(name)
    done = compile_part(Part(name, est, rows, tolerance=1e-4, unit="u"))
    assert done.published, done.reason
    assert done.method == METHOD[name]
    assert done.rows_checked == len(rows)
    assert done.max_abs_diff is not None and max(done.max_abs_diff.values()) <= 1e-4
    assert done.onnx is not None
    predictor = CompiledPredictor(name, done.onnx, done.method, done.n_features)
    # scikit-learn's shapes and dtype, one row and a batch, within float32 rounding
    for x in (rows[:1], rows):
        expected = getattr(est, done.method)(x)
        got = getattr(predictor, done.method)(x)
        assert got.shape == expected.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    if done.method == "predict_proba":  # labels too: the class of the larger probability
        np.testing.assert_array_equal(predictor.predict(rows), est.predict(rows))


def test_sessions_use_one_thread_and_the_graph_input_dtype() -> None:
    forest = estimators()["random_forest_regressor"]
    boosting = estimators()["hist_gradient_boosting_regressor"]
    p32 = CompiledPredictor("f", to_onnx(forest), "predict", 8)
    p64 = CompiledPredictor("b", to_onnx(boosting), "predict", 8)
    for p in (p32, p64):
        options = p.session.get_session_options()
        assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    # forests compare float32(x) like scikit-learn's trees; boosting keeps float64 (see below)
    assert p32.dtype == np.float32 and p64.dtype == np.float64
    assert "float64" in repr(p64)
    with pytest.raises(ValueError, match="expected shape"):
        p32.predict(HELD_OUT[:, :5])
    with pytest.raises(AttributeError, match="compiled for predict"):
        p32.predict_proba(HELD_OUT)


def test_boosting_takes_scikit_learns_branch_when_values_differ_by_float64_noise() -> None:
    """A threshold halfway between values 1e-12 apart (as features computed from quantised
    readings give): float32 cannot tell them apart, scikit-learn can (it bins and compares
    float64). The compiled form must follow it."""
    a = 0.3
    b = a * (1 + 1e-12)
    spread = np.linspace(-3, 3, 200)
    x = np.r_[np.full(100, a), np.full(100, b), spread].reshape(-1, 1)
    y = np.r_[np.zeros(100), np.full(100, 10.0), spread]
    est = HistGradientBoostingRegressor(
        max_iter=30, min_samples_leaf=5, early_stopping=False, random_state=0
    ).fit(x, y)
    probe = np.array([[a], [b]])
    expected = est.predict(probe)
    assert expected[1] - expected[0] > 5  # scikit-learn does separate them
    assert np.float32(a) == np.float32(b)  # float32 does not
    got = CompiledPredictor("b", to_onnx(est), "predict", 1).predict(probe)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_disagreement_beyond_the_tolerance_is_refused_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    forest = estimators()["random_forest_regressor"]
    with caplog.at_level(logging.WARNING, logger="vigie.models.compiled"):
        bundle = compile_parts([Part("target", forest, HELD_OUT, tolerance=1e-12, unit="mg/m3")])
    [part] = bundle.parts
    assert not part.published and part.onnx is None
    assert part.reason is not None
    assert "exceeds the tolerance 1e-12" in part.reason and "mg/m3" in part.reason
    assert part.max_abs_diff is not None and part.max_abs_diff["prediction"] > 1e-12
    assert [r.getMessage() for r in caplog.records] == [
        f"NOT publishing the compiled form of target, it stays joblib: {part.reason}"
    ]


class Halver(RegressorMixin, BaseEstimator):
    """A custom wrapper no converter knows."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> Halver:
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)[:, 0] / 2


@pytest.mark.parametrize(
    "est",
    [
        Halver().fit(X, Y_REG),
        HistGradientBoostingClassifier(max_iter=5).fit(X, RNG.integers(0, 3, len(X))),
        HistGradientBoostingRegressor(loss="poisson", max_iter=5).fit(X, np.abs(Y_REG)),
    ],
    ids=["custom", "multiclass_boosting", "poisson_boosting"],
)
def test_an_estimator_that_cannot_be_compiled_is_refused_not_raised(est: Any) -> None:
    bundle = compile_parts([Part("part", est, HELD_OUT, tolerance=1e-4)])
    [part] = bundle.parts
    assert not part.published
    assert part.reason is not None and part.reason.startswith(
        f"cannot compile {type(est).__name__}"
    )


def test_bundle_names_one_file_model_onnx_and_several_by_part() -> None:
    one = compile_parts([Part("estimator", estimators()["ridge_pipeline"], HELD_OUT, 1e-4)])
    assert one.file_name("estimator") == "model.onnx"
    two = compile_parts(
        [
            Part("h1", estimators()["ridge_pipeline"], HELD_OUT, 1e-4),
            Part("h6", estimators()["hist_gradient_boosting_regressor"], HELD_OUT, 1e-4),
        ]
    )
    assert [two.file_name(p.name) for p in two.parts] == ["model.h1.onnx", "model.h6.onnx"]
    assert {"skl2onnx", "onnx", "onnxruntime"} <= set(two.libraries)
    with pytest.raises(ValueError, match="duplicate"):
        compile_parts([Part("a", Halver(), HELD_OUT, 1.0), Part("a", Halver(), HELD_OUT, 1.0)])
    with pytest.raises(ValueError, match="part name"):
        compile_part(Part("../x", estimators()["ridge_pipeline"], HELD_OUT, 1e-4))


def test_check_rows_are_capped_and_spread() -> None:
    rows = np.arange(5000.0).reshape(-1, 1)
    picked = check_rows(rows)
    assert len(picked) == MAX_CHECK_ROWS
    assert picked[0, 0] == 0 and picked[-1, 0] == 4999
    assert len(check_rows(rows[:10])) == 10


# ------------------------------------------------- checks run by each service's test_compiled.py


def assert_card_lists_compiled_parts(
    models: Path, service: str, parts: dict[str, float]
) -> dict[str, Any]:
    """The card of the current model lists ``parts`` (name -> tolerance), each published with
    its file, sha256, size and largest difference within the tolerance."""
    store = ModelStore(models)
    version = store.current_version(service)
    card = store.read_card(service, version)
    assert card.compiled is not None
    listed = {p.name: p for p in card.compiled.parts}
    assert set(listed) == set(parts)
    for name, tolerance in parts.items():
        p = listed[name]
        assert p.reason is None and p.file is not None, p.reason
        data = (store.service_dir(service) / version / p.file).read_bytes()
        assert p.sha256 == hashlib.sha256(data).hexdigest() and p.bytes == len(data)
        assert p.tolerance == tolerance and p.rows_checked > 0
        assert p.max_abs_diff and 0 <= max(p.max_abs_diff.values()) <= tolerance
        assert p.input_dtype in ("float32", "float64")
    return listed


def version_dir(models: Path, service: str) -> Path:
    store = ModelStore(models)
    return store.service_dir(service) / store.current_version(service)


def tamper_onnx(models: Path, service: str, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of ``models`` whose first compiled file has one byte flipped (still valid ONNX
    more often than not: only the hash can tell); returns the copy and the file."""
    copy = tmp_path / "tampered-models"
    shutil.copytree(models, copy)
    onnx_file = sorted(version_dir(copy, service).glob("*.onnx"))[0]
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    return copy, onnx_file


def drop_compiled_form(models: Path, service: str, tmp_path: Path) -> Path:
    """A copy of ``models`` whose current card has no ``compiled`` section and no .onnx file,
    as a model trained before compiled inference."""
    copy = tmp_path / "old-models"
    shutil.copytree(models, copy)
    folder = version_dir(copy, service)
    card = json.loads((folder / "card.json").read_text())
    del card["compiled"]
    (folder / "card.json").write_text(json.dumps(card, indent=2))
    for f in folder.glob("*.onnx"):
        f.unlink()
    return copy


def assert_old_card_loads_joblib_with_one_log_line(
    models: Path, service: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Any:
    """Load a card without a compiled form: the joblib model serves, one log line says why.
    Returns the loaded model."""
    old = drop_compiled_form(models, service, tmp_path)
    with caplog.at_level(logging.INFO, logger="vigie.models.store"):
        loaded = ModelStore(old).load_current(service)
    assert loaded.compiled == {}
    assert loaded.card.compiled is None
    assert loaded.serving() is loaded  # nothing to swap: the joblib estimators serve
    lines = [r for r in caplog.records if r.name == "vigie.models.store"]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert NO_COMPILED_FORM in lines[0].getMessage()
    assert (
        lines[0].getMessage().startswith(f"{service} {loaded.version}: predictions use the joblib")
    )
    return loaded


def assert_tampered_onnx_makes_readyz_503(
    models: Path, service: str, tmp_path: Path, probe: dict[str, Any]
) -> None:
    """A service whose compiled file was modified does not load (readyz and predict 503) and
    its log names the file and both hashes."""
    copy, onnx_file = tamper_onnx(models, service, tmp_path)
    actual = hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    redis = RedisServer(tmp_path / "redis").start()
    served = make_served(service, tmp_path, copy, redis)
    log = tmp_path / "service.log"
    process = ServiceProcess(service, served.env, log, workers=1)
    try:
        served.service = process.start(ready_path="/healthz")
        with served.client() as c:
            ready = c.get("/readyz")
            predict = c.post("/v1/predict", json=probe, headers=served.headers())
    finally:
        process.stop()
        redis.stop()
    assert ready.status_code == 503 and predict.status_code == 503
    message = ready.json()["error"]["message"]
    assert "refusing the compiled form" in message and onnx_file.name in message
    text = log.read_text()
    assert "readyz answers 503" in text and f"its sha256 is {actual}" in text
    assert "predictions use" not in text  # neither form was loaded
