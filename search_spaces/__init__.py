"""Search spaces: default ranges of every loss, head and training knob, the study-file override
grammar, and the compiler that samples them with an Optuna trial.

This is the only package that calls ``trial.suggest_*``.
"""

from __future__ import annotations

from losstune.search_spaces.losses import (
    AUX_WEIGHT,
    AUX_WEIGHT_DEFAULTS,
    LOSS_SPACES,
    register_loss_space,
)
from losstune.search_spaces.params import (
    CategoricalDist,
    FixedDist,
    FloatDist,
    IntDist,
    Param,
    apply_override,
    parse_override,
)
from losstune.search_spaces.space import LOSS_NAME, SearchSpace, SpaceError, diff_spaces
from losstune.search_spaces.training import (
    FINE_TUNE_SPACE,
    MODEL_SPACES,
    TRAIN_SPACE,
    register_model_space,
)

__all__ = [
    "AUX_WEIGHT",
    "AUX_WEIGHT_DEFAULTS",
    "FINE_TUNE_SPACE",
    "LOSS_NAME",
    "LOSS_SPACES",
    "MODEL_SPACES",
    "TRAIN_SPACE",
    "CategoricalDist",
    "FixedDist",
    "FloatDist",
    "IntDist",
    "Param",
    "SearchSpace",
    "SpaceError",
    "diff_spaces",
    "apply_override",
    "parse_override",
    "register_loss_space",
    "register_model_space",
]
