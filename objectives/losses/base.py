"""The loss interface every loss in the registry (built-in or plugin) implements."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from losstune.objectives._checks import check  # noqa: F401 - re-exported for loss modules
from losstune.objectives.types import Batch, ModelOutputs

__all__ = ["CONTEXT_ARGS", "BaseLoss", "Batch", "ModelOutputs", "check"]

#: Constructor arguments filled from the training data, never searched or exported as knobs.
CONTEXT_ARGS = frozenset({"num_classes", "embedding_dim", "class_counts", "num_train"})


class BaseLoss(nn.Module):
    """Base class of losstune losses.

    A loss is an ``nn.Module`` with typed keyword-only hyperparameters (defaults: the paper's
    values), stored as attributes of the same name so that :meth:`get_config_dict` can return
    them. It works at two levels:

    * :meth:`forward` ``(outputs, batch)`` picks the model outputs and label form it needs;
    * ``compute(...)`` (per loss) holds the maths on tensors only; tests call it directly.

    Class attributes:
        name: registry name (snake_case), used in study files and parameter names.
        display_name: the paper's label (e.g. "DB", "R-FL").
        requires: ``ModelOutputs`` fields the loss reads; checked when a trial is built.
        targets: ``"index"`` (class ids, single-label only) or ``"multi_hot"``.
        sub_terms: names of the terms a multi-term loss returns (empty: one term).
        single_label_only: True when the loss cannot handle multi-label targets.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset({"logits"})
    targets: ClassVar[Literal["index", "multi_hot"]] = "multi_hot"
    sub_terms: ClassVar[tuple[str, ...]] = ()
    single_label_only: ClassVar[bool] = False

    def forward(
        self, outputs: ModelOutputs, batch: Batch
    ) -> torch.Tensor | dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def hyperparameters(cls) -> dict[str, inspect.Parameter]:
        """The constructor's keyword arguments that are knobs (context arguments excluded)."""
        params = inspect.signature(cls.__init__).parameters
        return {
            name: p
            for name, p in params.items()
            if name != "self"
            and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            and name not in CONTEXT_ARGS
        }

    @classmethod
    def context_arguments(cls) -> set[str]:
        params = inspect.signature(cls.__init__).parameters
        return {name for name in params if name in CONTEXT_ARGS}

    def get_config_dict(self) -> dict[str, Any]:
        """The loss's knobs as plain values (what export writes and the dashboard shows)."""
        out: dict[str, Any] = {}
        for name in self.hyperparameters():
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                value = value.tolist()
            out[name] = value
        return out

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Hook for losses whose terms depend on training progress (no-op by default)."""
