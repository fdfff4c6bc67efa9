"""Statistics of repeated runs: means, standard deviations and Student-t intervals.

Used by ``losstune train --seeds`` (:func:`losstune.studies.api.train_config`) and
``losstune confirm`` (:mod:`losstune.studies.confirm`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence


def mean_ci(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample std and a 95% Student-t interval (half-width) of ``values``.

    One value has std and interval 0.
    """
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return {"mean": mean, "std": 0.0, "ci95": 0.0, "n": n}
    std = statistics.stdev(values)
    from scipy import stats

    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return {"mean": mean, "std": std, "ci95": half, "n": n}


def summarize_runs(runs: Sequence[Mapping[str, Mapping[str, float]]], *,
                   skip: frozenset[str] = frozenset()) -> dict[str, dict[str, float]]:
    """:func:`mean_ci` of every ``val`` and ``test`` metric of several runs, keyed
    ``val.<metric>`` / ``test.<metric>`` (validation metrics in ``skip`` are left out)."""
    summary: dict[str, dict[str, float]] = {}
    for split, leave_out in (("val", skip), ("test", frozenset())):
        for key in sorted({k for r in runs for k in r[split]} - leave_out):
            summary[f"{split}.{key}"] = mean_ci([r[split][key] for r in runs if key in r[split]])
    return summary
