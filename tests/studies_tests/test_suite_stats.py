"""The suite's statistics against scipy and against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from losstune.studies.stats import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    holm,
    paired_test,
    t_interval,
    verdict,
    verdict_rule,
)


def test_t_interval_by_hand() -> None:
    # mean 2, sample std 1, n 3: half-width t_{0.975, 2} * 1 / sqrt(3) = 4.302653 / 1.732051
    iv = t_interval([1.0, 2.0, 3.0])
    assert iv.mean == 2.0 and iv.n == 3 and iv.std == 1.0
    assert iv.half_width == pytest.approx(4.302652729749464 / math.sqrt(3), rel=1e-12)
    assert (iv.low, iv.high) == pytest.approx((2 - 2.4841377, 2 + 2.4841377), abs=1e-6)
    one = t_interval([0.7])
    assert (one.mean, one.low, one.high, one.n) == (0.7, 0.7, 0.7, 1)
    assert math.isnan(t_interval([]).mean)
    assert t_interval([1.0, float("nan"), 3.0]).n == 2  # NaN values are dropped


def test_paired_test_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.6, 0.8, size=12)
    arm = base + rng.normal(0.01, 0.02, size=12)
    t = paired_test(arm.tolist(), base.tolist())
    assert t.n == 12
    assert t.t_p == pytest.approx(stats.ttest_rel(arm, base).pvalue, rel=1e-12)
    assert t.wilcoxon_p == pytest.approx(stats.wilcoxon(arm, base).pvalue, rel=1e-12)
    d = arm - base
    ci = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert (t.diff.low, t.diff.high) == pytest.approx(ci, rel=1e-10)
    assert t.diff.mean == pytest.approx(d.mean(), rel=1e-12)


def test_paired_test_by_hand() -> None:
    # differences 0.02, 0.04, 0.06: mean 0.04, sd 0.02, t = 0.04 / (0.02 / sqrt 3) = 3.4641,
    # two-sided p with 2 df = 0.0741799; Wilcoxon: all three positive, exact p = 2 / 8 = 0.25
    t = paired_test([0.52, 0.54, 0.56], [0.5, 0.5, 0.5])
    assert t.diff.mean == pytest.approx(0.04)
    assert t.t_p == pytest.approx(0.0741799, abs=1e-6)
    assert t.wilcoxon_p == pytest.approx(0.25)


def test_all_zero_differences_give_p_one() -> None:
    t = paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert (t.t_p, t.wilcoxon_p, t.diff.mean) == (1.0, 1.0, 0.0)
    assert verdict(t, 1.0, claim="greater", alpha=0.05, min_effect=0.005) == INCONCLUSIVE


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.02, 0.03, 0.5 -> x4, x3, x2, x1 = 0.04, 0.06, 0.06 (monotone), 0.5
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.4, 0.9]) == pytest.approx([0.8, 0.9])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([float("nan"), 0.01]) == pytest.approx([1.0, 0.02])  # NaN counts as 1
    assert holm([]) == []


def _test_with(diffs: list[float]):  # noqa: ANN202 - a PairedTest
    return paired_test([0.5 + d for d in diffs], [0.5] * len(diffs))


def test_holm_turns_a_nominal_p_below_alpha_into_inconclusive() -> None:
    gains = [0.05, -0.01, 0.03, 0.04, -0.02, 0.02, 0.06, 0.0, 0.01, 0.02]  # mean 0.02, n 10
    claim = _test_with(gains)
    assert claim.t_p == pytest.approx(0.0367875, abs=1e-6)  # nominally significant alone
    others = [0.2, 0.3, 0.8]  # three more comparisons in the suite
    adjusted = holm([claim.t_p, *others])
    assert adjusted[0] == pytest.approx(min(1.0, 4 * claim.t_p))
    assert adjusted[0] >= 0.05
    assert verdict(claim, claim.t_p, claim="greater", alpha=0.05, min_effect=0.005) == HOLDS
    assert verdict(claim, adjusted[0], claim="greater", alpha=0.05,
                   min_effect=0.005) == INCONCLUSIVE


def test_verdicts() -> None:
    up = _test_with([0.03, 0.04, 0.05, 0.035, 0.045, 0.04, 0.03, 0.05, 0.04, 0.045])
    assert up.t_p < 1e-6
    assert verdict(up, up.t_p, claim="greater", alpha=0.05, min_effect=0.005) == HOLDS
    # significant in the opposite direction of the claim
    assert verdict(up, up.t_p, claim="less", alpha=0.05, min_effect=0.005) == DOES_NOT_HOLD
    # not significant, but the whole interval lies below +min_effect: any gain is too small
    small = _test_with([0.001, -0.002, 0.0015, 0.0, -0.001, 0.002, 0.0005, -0.0015, 0.001,
                        0.0, 0.0005, -0.0005])
    assert small.diff.high < 0.005 and small.t_p > 0.05
    assert verdict(small, small.t_p, claim="greater", alpha=0.05,
                   min_effect=0.005) == DOES_NOT_HOLD
    # the same runs and a claimed decrease: the interval (signed towards the claim) also lies
    # below +min_effect
    assert verdict(small, small.t_p, claim="less", alpha=0.05,
                   min_effect=0.005) == DOES_NOT_HOLD
    # a wide interval: inconclusive
    wide = _test_with([0.05, -0.04, 0.06, -0.03, 0.02, 0.07, -0.05, 0.01, 0.04, -0.02])
    assert verdict(wide, wide.t_p, claim="greater", alpha=0.05,
                   min_effect=0.005) == INCONCLUSIVE


def test_small_effects_need_ten_paired_runs() -> None:
    # |mean| < 0.01 with 9 runs: inconclusive even though p is tiny and the interval lies
    # below +min_effect
    tiny = _test_with([0.008, 0.009, 0.008, 0.0085, 0.009, 0.008, 0.0088, 0.0082, 0.0086])
    assert tiny.n == 9 and tiny.t_p < 1e-6
    assert verdict(tiny, tiny.t_p, claim="greater", alpha=0.05,
                   min_effect=0.005) == INCONCLUSIVE
    assert verdict(tiny, tiny.t_p, claim="less", alpha=0.05, min_effect=0.005) == INCONCLUSIVE
    ten = _test_with([0.008, 0.009, 0.008, 0.0085, 0.009, 0.008, 0.0088, 0.0082, 0.0086,
                      0.0084])
    assert verdict(ten, ten.t_p, claim="greater", alpha=0.05, min_effect=0.005) == HOLDS


def test_rule_text_names_the_numbers() -> None:
    text = verdict_rule(alpha=0.05, min_effect=0.005, n_tests=4)
    for part in ("Holm", "0.05", "+0.005", "all 4 comparison", "fewer than 10", "0.01"):
        assert part in text
