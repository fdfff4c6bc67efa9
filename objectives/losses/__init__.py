"""The loss registry.

Adding a loss: write ``objectives/losses/<name>.py`` (a :class:`BaseLoss` subclass with a
docstring, typed keyword-only knobs, ``compute`` and ``forward``), add its class to the
built-ins registered in ``LOSSES`` below, one entry to
``losstune.search_spaces.losses.LOSS_SPACES`` and a test module; the contract test
(``tests/objectives_tests/losses_tests/test_loss_contract.py``) says which step is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from losstune.objectives.losses.balanced import (
    BCELoss,
    CBNTRLoss,
    ClassBalancedLoss,
    DBNoFocalLoss,
    DistributionBalancedLoss,
    FocalLoss,
    NTRFocalLoss,
    RebalancedFocalLoss,
    balanced_bce,
)
from losstune.objectives.losses.base import CONTEXT_ARGS, BaseLoss, Batch
from losstune.objectives.losses.ce import CrossEntropyLoss
from losstune.objectives.losses.g_loss import GLoss
from losstune.objectives.losses.latent_guidance import LatentGuidanceLoss
from losstune.objectives.losses.metric_learning import ArcFaceLoss, TripletLoss
from losstune.objectives.losses.overlap import DiceLoss, TverskyLoss
from losstune.objectives.losses.space import SpaceLoss
from losstune.objectives.losses.weighted_sum import WeightedSum, term_names
from losstune.objectives.registry import Registry

#: Every loss by name (a read-only mapping; add one with :func:`register_loss`).
LOSSES: Registry[type[BaseLoss]] = Registry(
    kind="loss",
    key="loss",
    base=BaseLoss,
    base_path="losstune.objectives.losses.BaseLoss",
    group="losstune.losses",
    knobs=lambda cls: cls.hyperparameters(),
    context_args=CONTEXT_ARGS,
)
for _cls in (
    CrossEntropyLoss,
    BCELoss,
    FocalLoss,
    ClassBalancedLoss,
    RebalancedFocalLoss,
    NTRFocalLoss,
    DBNoFocalLoss,
    CBNTRLoss,
    DistributionBalancedLoss,
    TripletLoss,
    ArcFaceLoss,
    SpaceLoss,
    GLoss,
    LatentGuidanceLoss,
    TverskyLoss,
    DiceLoss,
):
    LOSSES.register(_cls)
del _cls


def get_loss_class(name: str) -> type[BaseLoss]:
    """The registered loss class (installed plugins included); an unknown name raises
    ``KeyError`` listing the valid names."""
    return LOSSES.lookup(name)


def register_loss(cls: type[BaseLoss], *, overwrite: bool = False) -> type[BaseLoss]:
    """Add a loss class to the registry under ``cls.name`` (plugins call this)."""
    return LOSSES.register(cls, overwrite=overwrite)


def build_loss(name: str, params: Mapping[str, Any], context: Mapping[str, Any]) -> BaseLoss:
    """Instantiate a loss from its knobs plus the context arguments its constructor declares."""
    return LOSSES.build(name, params, context)  # type: ignore[no-any-return]


__all__ = [
    "CONTEXT_ARGS",
    "LOSSES",
    "ArcFaceLoss",
    "BCELoss",
    "Batch",
    "BaseLoss",
    "CBNTRLoss",
    "ClassBalancedLoss",
    "CrossEntropyLoss",
    "DBNoFocalLoss",
    "DiceLoss",
    "DistributionBalancedLoss",
    "FocalLoss",
    "GLoss",
    "LatentGuidanceLoss",
    "NTRFocalLoss",
    "RebalancedFocalLoss",
    "SpaceLoss",
    "TripletLoss",
    "TverskyLoss",
    "WeightedSum",
    "balanced_bce",
    "build_loss",
    "get_loss_class",
    "register_loss",
    "term_names",
]
