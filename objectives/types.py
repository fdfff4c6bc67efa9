"""The contract types every part shares: what a model returns, what a loss reads besides it,
and what a contract check reports.

A leaf module (torch and the standard library only), so that a loss, a head or a plugin can
import these types without loading the registries, the heads or the dataset loaders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

#: Output names a loss may require; heads declare which they produce.
OUTPUT_FIELDS = (
    "logits",  # (B, C) class scores
    "embeddings",  # (B, E) representation a metric or graph loss acts on
    "space_activations",  # (K, B, L, n) tanh-projected tokens of the space head
    "token_mask",  # (B, L) 1 for real tokens
    "latents",  # (B, Z) student latent (LatentG)
    "reconstruction",  # (B, D) decoder output (LatentG)
    "inputs",  # (B, D) the input vector a reconstruction targets
    "teacher_latents",  # (B, Z) cached teacher latents (LatentG)
    "teacher_logits",  # (B, C) cached teacher logits (LatentG)
)


@dataclass
class ModelOutputs:
    """Tensors produced by a model for one batch; fields a model does not make stay ``None``."""

    logits: torch.Tensor
    embeddings: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def get(self, name: str) -> torch.Tensor:
        if name == "logits":
            return self.logits
        if name == "embeddings" and self.embeddings is not None:
            return self.embeddings
        if name in self.extras:
            return self.extras[name]
        raise KeyError(
            f"model output {name!r} is not available; this model produced "
            f"{sorted(self.available())}"
        )

    def available(self) -> frozenset[str]:
        names = {"logits", *self.extras}
        if self.embeddings is not None:
            names.add("embeddings")
        return frozenset(names)


@dataclass
class Batch:
    """Labels and bookkeeping of one minibatch.

    Attributes:
        index: row numbers of the batch's documents inside their split.
        y: class indices ``(B,)`` for single-label data, ``None`` for multi-label data.
        y_multi: multi-hot targets ``(B, C)`` float (one-hot for single-label data).
        epoch: 0-based epoch number; ``num_epochs``: the run's epoch budget.
    """

    index: torch.Tensor
    y: torch.Tensor | None
    y_multi: torch.Tensor
    epoch: int = 0
    num_epochs: int = 1
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """One failed contract check: which part, which step of adding it, and what to do."""

    loss: str
    step: str
    message: str

    def __str__(self) -> str:
        return f"{self.loss}: [{self.step}] {self.message}"


__all__ = ["OUTPUT_FIELDS", "Batch", "ModelOutputs", "Problem"]
