"""Everything a plugin author imports from losstune, in one place.

A plugin (an installed package with an entry point, or a module a study file lists under
``plugins:``) writes a loss, a model head, an encoder or a dataset against these names only::

    from losstune.objectives.extend import BaseLoss, Batch, ModelOutputs, check, register_loss

The default search space of a plugin loss comes from :mod:`losstune.search_spaces`
(``register_loss_space``, ``FloatDist``, ...). Importing this module loads every registry and
its built-in parts.
"""

from __future__ import annotations

from losstune.objectives._checks import check
from losstune.objectives.data.base import Split
from losstune.objectives.data.registry import DatasetInfo, RawDataset, register_dataset
from losstune.objectives.encoders import TextEncoder, register_encoder
from losstune.objectives.losses import BaseLoss, register_loss
from losstune.objectives.models import BaseHead, register_model
from losstune.objectives.types import OUTPUT_FIELDS, Batch, ModelOutputs

__all__ = [
    "OUTPUT_FIELDS",
    "BaseHead",
    "BaseLoss",
    "Batch",
    "DatasetInfo",
    "ModelOutputs",
    "RawDataset",
    "Split",
    "TextEncoder",
    "check",
    "register_dataset",
    "register_encoder",
    "register_loss",
    "register_model",
]
