"""Li & Ma (1983) eq. 17, the ON/OFF mapping of a batch, and the level rule at its boundaries."""

from __future__ import annotations

import math

import pytest

from vigie.contract.levels import Level
from vigie_services.gamma_classifier.service import level_for
from vigie_services.gamma_classifier.significance import batch_excess, li_ma_significance


def test_a_worked_example_computed_by_hand() -> None:
    # N_on = 130, N_off = 500, alpha = 0.2 (an OFF region 5 times larger than the ON region):
    #   background alpha * N_off = 100, excess 30.
    #   N_on + N_off = 630
    #   ON term : 130 * ln((1.2 / 0.2) * 130 / 630) = 130 * ln(1.2380952) = 130 * 0.2135741
    #           = 27.764633
    #   OFF term: 500 * ln(1.2 * 500 / 630)         = 500 * ln(0.9523810) = 500 * -0.0487902
    #           = -24.395082
    #   S = sqrt(2 * (27.764633 - 24.395082)) = sqrt(6.739102) = 2.59598
    assert li_ma_significance(130, 500, 0.2) == pytest.approx(2.59598, abs=1e-5)
    # the naive excess / sqrt(background) = 30 / 10 = 3 overstates it; eq. 17 accounts for the
    # uncertainty of the background measured in the OFF region
    assert li_ma_significance(130, 500, 0.2) < 3.0


def test_a_batch_example_computed_by_hand() -> None:
    # a batch at a 5 % hadron cut: alpha = 0.05 / 0.95 = 1/19; 30 events ON, 100 OFF
    #   ON : 30 * ln(20 * 30 / 130)  = 30 * ln(4.6153846) = 30 * 1.5293952 = 45.881856
    #   OFF: 100 * ln((20/19) * 100 / 130) = 100 * ln(0.8097166) = 100 * -0.2110710 = -21.107097
    #   S = sqrt(2 * 24.774759) = sqrt(49.549518) = 7.03914
    assert li_ma_significance(30, 100, 1 / 19) == pytest.approx(7.03914, abs=1e-5)
    out = batch_excess(events=130, gamma_classified=30, hadron_fpr=0.05, gamma_efficiency=0.65)
    assert out.significance_sigma == pytest.approx(7.03914, abs=1e-5)
    assert out.alpha == pytest.approx(1 / 19)
    assert out.hadron_classified == 100
    assert out.estimated_hadrons == pytest.approx(100 / 0.95)
    assert out.expected_background == pytest.approx(100 / 19)  # 5.263
    assert out.excess == pytest.approx(30 - 100 / 19)
    assert out.estimated_gammas == pytest.approx((30 - 100 / 19) * 0.95 / 0.60)


def test_no_event_on_is_a_negative_significance_in_closed_form() -> None:
    # N_on = 0: only the OFF term, 100 * ln(1 + alpha) -> S = -sqrt(2 * 100 * ln(20/19))
    s = li_ma_significance(0, 100, 1 / 19)
    assert s == pytest.approx(-math.sqrt(200 * math.log(20 / 19)))
    assert s == pytest.approx(-3.20291, abs=1e-5)
    out = batch_excess(100, 0, 0.05, 0.65)
    assert out.significance_sigma == s and out.excess < 0


def test_no_event_off_is_the_on_term_alone() -> None:
    # N_off = 0: S = sqrt(2 * N_on * ln((1 + alpha) / alpha)) = sqrt(20 ln 5) for 10, 0.25
    assert li_ma_significance(10, 0, 0.25) == pytest.approx(math.sqrt(20 * math.log(5)))


def test_sign_convention_and_symmetry() -> None:
    assert li_ma_significance(0, 0, 0.1) == 0.0
    assert li_ma_significance(50, 50, 1.0) == 0.0  # exactly the background
    assert li_ma_significance(10, 200, 0.05) == 0.0  # N_on == alpha * N_off
    assert li_ma_significance(5, 200, 0.05) < 0 < li_ma_significance(15, 200, 0.05)
    # a deficit and an excess of the same size are not symmetric, but both are ~ excess/sigma
    assert -2 < li_ma_significance(5, 200, 0.05) < -1
    # swapping the regions (alpha -> 1/alpha) flips the sign and keeps |S|
    assert li_ma_significance(40, 400, 0.05) == pytest.approx(
        -li_ma_significance(400, 40, 20.0), rel=1e-12
    )


def test_grows_with_the_excess_and_with_exposure() -> None:
    values = [li_ma_significance(k, 100, 1 / 19) for k in range(0, 40)]
    assert values == sorted(values)
    # same ON/OFF ratio, 4 times the events: about twice the significance
    assert li_ma_significance(120, 400, 0.1) == pytest.approx(
        2 * li_ma_significance(30, 100, 0.1), rel=1e-9
    )


def test_approaches_the_simple_estimate_for_large_counts() -> None:
    # Li & Ma eq. 5 (background known exactly as alpha -> 0 with alpha * N_off fixed):
    # S -> (N_on - B) / sqrt(B) only to first order; check eq. 17 is within a few percent.
    n_on, background = 10_500, 10_000
    alpha = 1e-4
    s = li_ma_significance(n_on, background / alpha, alpha)
    assert s == pytest.approx(500 / math.sqrt(10_000), rel=0.03)


@pytest.mark.parametrize(
    ("n_on", "n_off", "alpha"), [(-1, 5, 0.1), (1, -5, 0.1), (1, 5, 0.0), (1, 5, math.inf)]
)
def test_invalid_inputs_are_refused(n_on: int, n_off: int, alpha: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        li_ma_significance(n_on, n_off, alpha)


def test_batch_excess_refuses_impossible_batches() -> None:
    with pytest.raises(ValueError):
        batch_excess(10, 11, 0.05, 0.6)
    with pytest.raises(ValueError):
        batch_excess(10, 2, 0.0, 0.6)
    with pytest.raises(ValueError):
        batch_excess(10, 2, 0.5, 0.4)  # a cut no better than chance


@pytest.mark.parametrize(
    ("s", "level"),
    [
        (-4.0, Level.NORMAL),
        (0.0, Level.NORMAL),
        (math.nextafter(3.0, 0.0), Level.NORMAL),
        (2.999, Level.NORMAL),
        (3.0, Level.ALERTE),
        (3.001, Level.ALERTE),
        (4.999, Level.ALERTE),
        (math.nextafter(5.0, 0.0), Level.ALERTE),
        (5.0, Level.CRITIQUE),
        (5.001, Level.CRITIQUE),
        (40.0, Level.CRITIQUE),
    ],
)
def test_level_rule_at_its_boundaries(s: float, level: Level) -> None:
    assert level_for(s, 3.0, 5.0) is level


def test_batches_just_below_and_above_the_default_boundaries() -> None:
    # 100 events classified hadron at a 5 % cut; how many gamma-classified events reach 3 and 5?
    s = {k: batch_excess(100 + k, k, 0.05, 0.65).significance_sigma for k in range(40)}
    k3 = min(k for k, v in s.items() if v >= 3)
    k5 = min(k for k, v in s.items() if v >= 5)
    assert level_for(s[k3 - 1], 3, 5) is Level.NORMAL and level_for(s[k3], 3, 5) is Level.ALERTE
    assert level_for(s[k5 - 1], 3, 5) is Level.ALERTE and level_for(s[k5], 3, 5) is Level.CRITIQUE
    # by hand, background 100/19 = 5.26 events:
    #   13 ON: 13 ln(20*13/113) + 100 ln(2000/(19*113)) = 10.83281 - 7.09250 -> sqrt(7.4806) = 2.735
    #   14 ON: 14 ln(20*14/114) + 100 ln(2000/(19*114)) = 12.58026 - 7.97350 -> sqrt(9.2135) = 3.035
    assert (k3, round(s[k3 - 1], 3), round(s[k3], 3)) == (14, 2.735, 3.035)
