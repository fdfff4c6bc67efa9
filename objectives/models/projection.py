"""A trainable projection of the sentence embedding, with a linear classifier on top."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from losstune.objectives._checks import check
from losstune.objectives.models.heads import BaseHead
from losstune.objectives.types import ModelOutputs

_ACTIVATIONS = {"none": nn.Identity, "tanh": nn.Tanh, "relu": nn.ReLU}


class ProjectionHead(BaseHead):
    """``e = [normalise](act(W_p dropout(x)))``, ``z = W_c e + b``: embeddings for metric and
    graph losses (triplet, ArcFace, G-Loss), logits for CE.

    The seed's embedder was LayerNorm, Linear to 128 or 256, tanh and dropout 0.3 on mean-pooled
    KoBERT states; its classifier added a tanh and a softmax before CE, which is not copied here.

    Args:
        embedding_dim: width ``E`` of the projected embedding (seed: 128 or 256).
        activation: ``tanh`` (seed), ``relu`` or ``none``.
        normalize: L2-normalise the embedding before the classifier and the losses.
        dropout: dropout on the input sentence embedding.

    Outputs: ``logits`` ``(B, C)`` and ``embeddings`` ``(B, E)``; ``embedding_dim`` tells the
    trainer the width (ArcFace proxies are built from it).
    """

    name = "projection"

    def __init__(
        self,
        *,
        in_dim: int,
        num_classes: int,
        embedding_dim: int = 128,
        activation: Literal["tanh", "relu", "none"] = "tanh",
        normalize: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check(embedding_dim >= 1, "embedding_dim >= 1", embedding_dim=embedding_dim)
        check(0 <= dropout < 1, "0 <= dropout < 1", dropout=dropout)
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, but got {activation!r}"
            )
        self.embedding_dim, self.activation = int(embedding_dim), activation
        self.normalize, self.dropout = bool(normalize), dropout
        self.drop = nn.Dropout(dropout)
        self.project = nn.Sequential(nn.Linear(in_dim, embedding_dim), _ACTIVATIONS[activation]())
        self.classifier = nn.Linear(embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        e = self.project(self.drop(x))
        return F.normalize(e, dim=-1) if self.normalize else e

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutputs:
        e = self.embed(inputs["embeddings"])
        return ModelOutputs(logits=self.classifier(e), embeddings=e)
