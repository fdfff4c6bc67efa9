"""Model registry: heads trained on cached encoder outputs."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from losstune.objectives.models.heads import BaseHead, LinearHead, MLPHead
from losstune.objectives.models.latentg import DualTextCNNHead, LatentGStudentHead
from losstune.objectives.models.projection import ProjectionHead
from losstune.objectives.models.sequence import BiRNNHead, TextCNNHead
from losstune.objectives.models.space import SpaceHead
from losstune.objectives.registry import Registry
from losstune.objectives.types import OUTPUT_FIELDS, ModelOutputs

#: Constructor arguments filled from the data, never searched.
HEAD_CONTEXT_ARGS = frozenset(
    {"in_dim", "num_classes", "token_dim", "max_length", "vocab_size", "token_vectors"}
)


def model_hyperparameters(cls: type[BaseHead]) -> dict[str, inspect.Parameter]:
    """The head constructor's keyword-only knobs (context arguments excluded)."""
    params = inspect.signature(cls.__init__).parameters
    return {
        n: p
        for n, p in params.items()
        if n != "self" and n not in HEAD_CONTEXT_ARGS and p.kind == p.KEYWORD_ONLY
    }


#: Every model head by name (a read-only mapping; add one with :func:`register_model`).
MODELS: Registry[type[BaseHead]] = Registry(
    kind="model head",
    key="model",
    base=BaseHead,
    base_path="losstune.objectives.models.BaseHead",
    group="losstune.models",
    knobs=model_hyperparameters,
    context_args=HEAD_CONTEXT_ARGS,
)
for _cls in (
    LinearHead,
    MLPHead,
    ProjectionHead,
    SpaceHead,
    TextCNNHead,
    BiRNNHead,
    DualTextCNNHead,
    LatentGStudentHead,
):
    MODELS.register(_cls)
del _cls


def get_model_class(name: str) -> type[BaseHead]:
    """The registered head class (installed plugins included); an unknown name raises
    ``KeyError`` listing the valid names."""
    return MODELS.lookup(name)


def build_model(name: str, params: Mapping[str, Any], context: Mapping[str, Any]) -> BaseHead:
    """Instantiate a head from its knobs plus the context arguments its constructor declares."""
    return MODELS.build(name, params, context)  # type: ignore[no-any-return]


def register_model(cls: type[BaseHead], *, overwrite: bool = False) -> type[BaseHead]:
    """Add a head class to the registry under ``cls.name`` (plugins call this)."""
    return MODELS.register(cls, overwrite=overwrite)


__all__ = [
    "HEAD_CONTEXT_ARGS",
    "MODELS",
    "OUTPUT_FIELDS",
    "BaseHead",
    "BiRNNHead",
    "DualTextCNNHead",
    "LatentGStudentHead",
    "LinearHead",
    "MLPHead",
    "ModelOutputs",
    "ProjectionHead",
    "SpaceHead",
    "TextCNNHead",
    "build_model",
    "get_model_class",
    "model_hyperparameters",
    "register_model",
]
