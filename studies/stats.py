"""Statistics of repeated runs and of paired comparisons, in one place.

* :func:`t_interval` / :func:`mean_ci`: mean and 95% Student-t interval of repeated runs
  (``losstune train --seeds``, ``losstune confirm``, a suite's table cells);
* :func:`paired_test`, :func:`holm`, :func:`verdict`, :func:`verdict_rule`: a suite's paired
  comparisons (paired t-test and Wilcoxon signed-rank test, Holm's correction, the verdict rule
  printed under its tables).

Plain numbers in, plain numbers out (no storage, no torch), so that the rule printed under a
table is exactly the rule the code applies.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"

#: below this |mean difference| a claim needs at least SMALL_EFFECT_MIN_N paired runs
SMALL_EFFECT = 0.01
SMALL_EFFECT_MIN_N = 10


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values with a two-sided Student-t interval ``[low, high]``."""

    mean: float
    low: float
    high: float
    n: int
    std: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def t_interval(values: Sequence[float], *, level: float = 0.95) -> Interval:
    """Mean and ``level`` Student-t interval of ``values`` (NaN values are dropped).

    One value gives a zero-width interval at it (no spread can be estimated); none gives NaN.
    """
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, mean, mean, 1, 0.0)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, std)


def mean_ci(values: Sequence[float]) -> dict[str, float]:
    """:func:`t_interval` as the mapping stored by ``confirm`` and printed by ``train``:
    ``{"mean", "std", "ci95" (half-width), "n"}``; one value has std and interval 0."""
    interval = t_interval(values)
    return {"mean": interval.mean, "std": interval.std, "ci95": interval.half_width,
            "n": interval.n}


def summarize_runs(runs: Sequence[Mapping[str, Mapping[str, float]]], *,
                   skip: frozenset[str] = frozenset()) -> dict[str, dict[str, float]]:
    """:func:`mean_ci` of every ``val`` and ``test`` metric of several runs, keyed
    ``val.<metric>`` / ``test.<metric>`` (validation metrics in ``skip`` are left out)."""
    summary: dict[str, dict[str, float]] = {}
    for split, leave_out in (("val", skip), ("test", frozenset())):
        for key in sorted({k for r in runs for k in r[split]} - leave_out):
            summary[f"{split}.{key}"] = mean_ci([r[split][key] for r in runs if key in r[split]])
    return summary


@dataclass(frozen=True)
class PairedTest:
    """Paired differences (arm - baseline) over matched runs and their tests."""

    n: int
    diff: Interval
    t_p: float  # two-sided paired t-test (scipy.stats.ttest_rel)
    wilcoxon_p: float  # two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon)


def paired_test(arm: Sequence[float], baseline: Sequence[float]) -> PairedTest:
    """Compare matched values ``arm[i]`` and ``baseline[i]``.

    All-zero differences give p = 1 for both tests. Fewer than two pairs give a NaN t-test p
    (no variance to estimate); the Wilcoxon test of one non-zero pair is p = 1.
    """
    from scipy import stats

    a = np.asarray(arm, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"`len(arm) == len(baseline)` must hold, but got {len(a)} and {len(b)}")
    d = a - b
    n = len(d)
    interval = t_interval(d.tolist())
    if n == 0:
        return PairedTest(0, interval, math.nan, math.nan)
    if np.all(d == 0):
        return PairedTest(n, interval, 1.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_p = float(stats.ttest_rel(a, b).pvalue) if n >= 2 else math.nan
        try:
            w_p = float(stats.wilcoxon(a, b).pvalue)
        except ValueError:
            w_p = math.nan
    return PairedTest(n, interval, t_p, w_p)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given). NaN counts as 1."""
    p = np.array([1.0 if (v is None or math.isnan(v)) else float(v) for v in pvalues])
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def verdict(test: PairedTest, holm_p: float, *, claim: str, alpha: float,
            min_effect: float) -> str:
    """The verdict on "arm is ``claim`` (greater or less) than baseline".

    * inconclusive when |mean difference| < 0.01 with fewer than 10 paired runs, whatever else;
    * holds when the Holm-adjusted p < ``alpha`` and the mean difference is in the claimed
      direction;
    * does not hold when the Holm-adjusted p < ``alpha`` in the opposite direction, or when the
      whole 95% interval of the difference (signed towards the claim) lies below
      ``+min_effect``: any gain is smaller than ``min_effect``;
    * inconclusive otherwise.
    """
    if claim not in ("greater", "less"):
        raise ValueError(f"claim must be 'greater' or 'less', but got {claim!r}")
    d = test.diff
    if test.n == 0 or math.isnan(d.mean):
        return INCONCLUSIVE
    if abs(d.mean) < SMALL_EFFECT and test.n < SMALL_EFFECT_MIN_N:
        return INCONCLUSIVE
    sign = 1.0 if claim == "greater" else -1.0
    gain = sign * d.mean
    gain_high = max(sign * d.low, sign * d.high)
    significant = not math.isnan(holm_p) and holm_p < alpha
    if significant and gain > 0:
        return HOLDS
    if (significant and gain < 0) or (test.n >= 2 and gain_high < min_effect):
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def verdict_rule(*, alpha: float, min_effect: float, n_tests: int) -> str:
    """The rule of :func:`verdict` in words (the caption of the comparison tables)."""
    return (
        f"Differences are arm - baseline over runs paired by (holdout, seed), with 95% "
        f"t-intervals; p-values are two-sided; Holm's correction is applied to the paired "
        f"t-test p-values of all {n_tests} comparison(s) of the suite. Verdict on the claimed "
        f"direction: **holds** when Holm p < {alpha:g} and the mean difference is in the "
        f"claimed direction; **does not hold** when Holm p < {alpha:g} in the opposite "
        f"direction, or when the whole 95% interval of the difference lies on the wrong side "
        f"of +{min_effect:g} (any gain is smaller than {min_effect:g}); **inconclusive** "
        f"otherwise, and always when |mean difference| < {SMALL_EFFECT:g} with fewer than "
        f"{SMALL_EFFECT_MIN_N} paired runs."
    )
