"""vigie.models.compile with the real onnxruntime on synthetic data: every converter agrees with
scikit-learn, disagreement and unconvertible estimators are refused with the reason, the bundle
names its files and the card section lists every part."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from tests.shared.models.estimators import HELD_OUT, METHOD, RNG, Y_REG, X, estimators, rows_for
from vigie.models.compile import (
    MAX_CHECK_ROWS,
    Part,
    check_rows,
    compile_part,
    compile_parts,
    to_onnx,
)
from vigie.models.compile.bundle import PRECISION, write_compiled
from vigie.models.compiled import CompiledPredictor


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
    with caplog.at_level(logging.WARNING, logger="vigie.models.compile.parts"):
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


def test_the_card_section_lists_published_and_refused_parts_with_the_files_written(
    tmp_path: Path,
) -> None:
    bundle = compile_parts(
        [
            Part("ridge", estimators()["ridge_pipeline"], HELD_OUT, 1e-4, "u"),
            Part("custom", Halver().fit(X, Y_REG), HELD_OUT, 1e-4),
        ]
    )
    section = write_compiled(tmp_path, bundle)
    assert section["precision"] == PRECISION and section["runtime"] == "onnxruntime"
    ridge, custom = section["parts"]
    data = (tmp_path / "model.ridge.onnx").read_bytes()
    assert ridge["file"] == "model.ridge.onnx" and ridge["bytes"] == len(data)
    assert ridge["sha256"] == hashlib.sha256(data).hexdigest()
    assert ridge["input_dtype"] == "float32" and ridge["unit"] == "u"
    assert custom["file"] is None and custom["sha256"] is None
    assert custom["reason"].startswith("cannot compile Halver")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ridge.onnx"]
