"""What one trial builds, trains and scores: data, encoders, heads, losses, metrics, training.

Nothing in this package samples parameters; it takes a plain
:class:`~losstune.objectives.config.TrialConfig`. Optuna appears only in
:mod:`losstune.objectives.objective`.
"""

from __future__ import annotations

from losstune.objectives.config import (
    DataConfig,
    EncoderConfig,
    EvalConfig,
    LossConfig,
    LossTerm,
    ModelConfig,
    TrainConfig,
    TrialConfig,
)

__all__ = [
    "DataConfig",
    "EncoderConfig",
    "EvalConfig",
    "LossConfig",
    "LossTerm",
    "ModelConfig",
    "TrainConfig",
    "TrialConfig",
]
