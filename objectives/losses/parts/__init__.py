"""Small composable pieces of the balanced BCE family (Huang et al., 2021).

* :mod:`.weighting`: per-entry weights (class-balanced, rebalanced);
* :mod:`.modulation`: focal modulation with the reference code's constant alpha;
* :mod:`.regularization`: negative-tolerant logit regularisation (NTR).
"""

from __future__ import annotations

from losstune.objectives.losses.parts.modulation import focal_factor
from losstune.objectives.losses.parts.regularization import (
    init_bias_from_counts,
    negative_tolerant,
)
from losstune.objectives.losses.parts.weighting import class_balanced_weight, rebalanced_weight

__all__ = [
    "class_balanced_weight",
    "focal_factor",
    "init_bias_from_counts",
    "negative_tolerant",
    "rebalanced_weight",
]
