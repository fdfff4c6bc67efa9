"""Model registry: heads trained on cached encoder outputs."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from losstune.objectives.data.registry import unknown_name_message
from losstune.objectives.models.heads import BaseHead, LinearHead, MLPHead
from losstune.objectives.models.latentg import DualTextCNNHead, LatentGStudentHead
from losstune.objectives.models.outputs import OUTPUT_FIELDS, ModelOutputs
from losstune.objectives.models.projection import ProjectionHead
from losstune.objectives.models.sequence import BiRNNHead, TextCNNHead
from losstune.objectives.models.space import SpaceHead

#: Constructor arguments filled from the data, never searched.
HEAD_CONTEXT_ARGS = frozenset(
    {"in_dim", "num_classes", "token_dim", "max_length", "vocab_size", "token_vectors"}
)

MODELS: dict[str, type[BaseHead]] = {
    "linear": LinearHead,
    "mlp": MLPHead,
    "projection": ProjectionHead,
    "space": SpaceHead,
    "textcnn": TextCNNHead,
    "birnn": BiRNNHead,
    "dual_textcnn": DualTextCNNHead,
    "latentg_student": LatentGStudentHead,
}


def get_model_class(name: str) -> type[BaseHead]:
    from losstune.objectives.plugins import load_entry_point_plugins

    load_entry_point_plugins()
    if name not in MODELS:
        raise KeyError(unknown_name_message("model head", name, list(MODELS)))
    return MODELS[name]


def model_hyperparameters(cls: type[BaseHead]) -> dict[str, inspect.Parameter]:
    params = inspect.signature(cls.__init__).parameters
    return {
        n: p
        for n, p in params.items()
        if n != "self" and n not in HEAD_CONTEXT_ARGS and p.kind == p.KEYWORD_ONLY
    }


def build_model(name: str, params: Mapping[str, Any], context: Mapping[str, Any]) -> BaseHead:
    cls = get_model_class(name)
    valid = model_hyperparameters(cls)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"model head {name!r} has no parameter(s) {unknown}; valid parameters: {sorted(valid)}"
        )
    wanted = set(inspect.signature(cls.__init__).parameters) & HEAD_CONTEXT_ARGS
    return cls(**dict(params), **{k: context[k] for k in wanted if k in context})


def register_model(cls: type[BaseHead], *, overwrite: bool = False) -> type[BaseHead]:
    if not isinstance(cls, type) or not issubclass(cls, BaseHead):
        raise TypeError(f"{cls!r} is not a subclass of losstune.objectives.models.BaseHead")
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"model class {cls.__qualname__} must declare a `name`, got {name!r}")
    if name in MODELS and MODELS[name] is not cls and not overwrite:
        raise ValueError(f"model name {name!r} is already registered")
    MODELS[name] = cls
    return cls


__all__ = [
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
