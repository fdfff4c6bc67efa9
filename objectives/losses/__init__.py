"""The loss registry.

Adding a loss: write ``objectives/losses/<name>.py`` (a :class:`BaseLoss` subclass with a
docstring, typed keyword-only knobs, ``compute`` and ``forward``), add one line to ``LOSSES``,
one entry to ``losstune.search_spaces.losses.LOSS_SPACES`` and a test module; the contract test
(``tests/objectives_tests/losses_tests/test_loss_contract.py``) says which step is missing.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from losstune.objectives.data.registry import unknown_name_message
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

LOSSES: dict[str, type[BaseLoss]] = {
    "ce": CrossEntropyLoss,
    "bce": BCELoss,
    "focal": FocalLoss,
    "cb": ClassBalancedLoss,
    "r_focal": RebalancedFocalLoss,
    "ntr_focal": NTRFocalLoss,
    "db_no_focal": DBNoFocalLoss,
    "cb_ntr": CBNTRLoss,
    "db": DistributionBalancedLoss,
    "triplet": TripletLoss,
    "arcface": ArcFaceLoss,
    "space": SpaceLoss,
    "g_loss": GLoss,
    "latent_guidance": LatentGuidanceLoss,
    "tversky": TverskyLoss,
    "dice": DiceLoss,
}


def get_loss_class(name: str) -> type[BaseLoss]:
    """The registered loss class, with an error that lists the valid names."""
    from losstune.objectives.plugins import load_entry_point_plugins

    load_entry_point_plugins()
    if name not in LOSSES:
        raise KeyError(unknown_name_message("loss", name, list(LOSSES)))
    return LOSSES[name]


def register_loss(cls: type[BaseLoss], *, overwrite: bool = False) -> type[BaseLoss]:
    """Add a loss class to the registry under ``cls.name`` (plugins call this)."""
    if not isinstance(cls, type) or not issubclass(cls, BaseLoss):
        raise TypeError(f"{cls!r} is not a subclass of losstune.objectives.losses.BaseLoss")
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(
            f"loss class {cls.__qualname__} must declare a snake_case `name` identifier, "
            f"got {name!r}"
        )
    if name in LOSSES and LOSSES[name] is not cls and not overwrite:
        raise ValueError(
            f"loss name {name!r} is already registered by {LOSSES[name].__module__}."
            f"{LOSSES[name].__qualname__}"
        )
    LOSSES[name] = cls
    return cls


def build_loss(name: str, params: Mapping[str, Any], context: Mapping[str, Any]) -> BaseLoss:
    """Instantiate a loss from its knobs plus the context arguments its constructor declares."""
    cls = get_loss_class(name)
    valid = cls.hyperparameters()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"loss {name!r} has no parameter(s) {unknown}; valid parameters: {sorted(valid)}"
        )
    wanted = set(inspect.signature(cls.__init__).parameters) & CONTEXT_ARGS
    kwargs = {k: context[k] for k in wanted if k in context}
    return cls(**dict(params), **kwargs)


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
