"""What one trial builds, trains and scores: data, encoders, heads, losses, metrics, training.

Nothing in this package samples parameters; it takes a plain
:class:`~losstune.objectives.config.TrialConfig`. Optuna appears only in
:mod:`losstune.objectives.objective`. Importing this package is cheap: the configuration classes
below load on first use, so that light modules (:mod:`losstune.objectives.errors`) stay light.
"""

from __future__ import annotations

from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in __all__:
        from losstune.objectives import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
