"""What a model returns: the contract between models and losses."""

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
