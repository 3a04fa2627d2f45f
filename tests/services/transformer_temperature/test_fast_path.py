"""transformer-temperature's features written in place into one matrix (few numpy calls for a
single origin) against the block-by-block code they replaced, bit for bit (no server)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from vigie_services.transformer_temperature import features as ft


def reference_features_and_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features.features_and_scale as it was first written (hstack of blocks)."""
    arr = np.asarray(values, dtype=np.float64)
    win = sliding_window_view(arr, ft.HISTORY_HOURS, axis=0)
    ot = win[:, ft._OT, :]
    loads = win[:, : ft._OT, :]
    now = ot[:, -1:]
    scale = np.abs(np.diff(ot, axis=1)).mean(axis=1, keepdims=True) + ft._OT_SCALE_FLOOR_C
    load_now = loads[:, :, -1]
    load_mean = loads.mean(axis=2)
    load_scale = (
        loads.std(axis=2) + ft._LOAD_SCALE_REL * np.abs(loads).mean(axis=2) + ft._LOAD_SCALE_FLOOR
    )
    mean_24h = ot[:, -24:].mean(axis=1, keepdims=True)
    ot_blocks = [
        now - ot[:, [-1 - k for k in ft._OT_LAGS]],
        now - ot.mean(axis=1, keepdims=True),
        now - mean_24h,
        now - ot.min(axis=1, keepdims=True),
        ot.max(axis=1, keepdims=True) - now,
        ot.std(axis=1, keepdims=True),
        mean_24h - ot[:, -48:-24].mean(axis=1, keepdims=True),
        ot[:, -6:].mean(axis=1, keepdims=True) - now,
    ]
    for d in ft._DAYS_BACK:
        for s in ft._DAILY_STEPS:
            ot_blocks.append(ot[:, [-1 - d + s]] - ot[:, [-1 - d]])
            ot_blocks.append(ot[:, [-1 - d + s]] - now)
    load_blocks = [load_now - loads[:, :, -1 - k] for k in ft._LOAD_LAGS]
    load_blocks.append(load_now - load_mean)
    load_blocks += [loads[:, :, -25 + s] - loads[:, :, -25] for s in ft._DAILY_STEPS]
    features = np.hstack(
        [scale, np.hstack(ot_blocks) / scale, np.hstack(load_blocks) / np.tile(load_scale, 7)]
    )
    return features, scale[:, 0]


def series(n: int, seed: int) -> np.ndarray:
    """Hourly loads and OT with daily cycles, noise, quantised readings and a flat channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    daily = np.sin(2 * np.pi * t / 24)[:, None]
    loads = rng.uniform(-5, 40, 6) + rng.uniform(0.5, 8, 6) * daily + rng.normal(0, 0.7, (n, 6))
    loads[:, 3] = 0.0  # a channel stuck at 0, as in the ETT files
    ot = 30 + 8 * np.sin(2 * np.pi * (t - 5) / 24) + np.cumsum(rng.normal(0, 0.3, n))
    return np.round(np.column_stack([loads, ot]), 3)


@pytest.mark.parametrize(("n", "seed"), [(72, 0), (73, 1), (95, 2), (300, 3), (1200, 4)])
def test_features_equal_the_block_by_block_code_bit_for_bit(n: int, seed: int) -> None:
    values = series(n, seed)
    features, scale = ft.features_and_scale(values)
    expected, expected_scale = reference_features_and_scale(values)
    assert features.shape == (n - ft.HISTORY_HOURS + 1, len(ft.FEATURES))
    assert np.array_equal(features, expected) and np.array_equal(scale, expected_scale)
    assert features.flags.c_contiguous  # what ONNX Runtime takes without a copy
    # another memory layout (numpy may sum in another order): still the same as the reference
    strided = np.asfortranarray(values)
    assert np.array_equal(
        ft.features_and_scale(strided)[0], reference_features_and_scale(strided)[0]
    )


def test_mean_and_std_are_numpys_on_strided_windows() -> None:
    values = series(200, 9)
    win = sliding_window_view(values, ft.HISTORY_HOURS, axis=0)
    for x, axis in ((win[:, ft._OT, :], 1), (win[:, : ft._OT, :], 2), (win[:, ft._OT, -24:], 1)):
        assert np.array_equal(ft._mean(x, axis), x.mean(axis=axis, keepdims=True))
        assert np.array_equal(ft._std(x, axis), x.std(axis=axis, keepdims=True))
