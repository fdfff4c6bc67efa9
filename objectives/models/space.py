"""The space-model head (Tytarenko & Amin, 2024): one tanh "concept space" per class."""

from __future__ import annotations

import torch
from torch import nn

from losstune.objectives._checks import check
from losstune.objectives.models.heads import BaseHead
from losstune.objectives.types import ModelOutputs


def masked_token_mean(activations: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: ``(K, B, L, n)`` activations, ``(B, L)`` mask -> ``(K, B, n)``.

    A document without any real token gets a zero vector.
    """
    m = mask.to(activations.dtype)[None, :, :, None]
    count = m.sum(dim=2).clamp_min(1.0)
    return (activations * m).sum(dim=2) / count


class SpaceHead(BaseHead):
    """Concept spaces over token states: ``C_k = tanh(H P_k)``, ``u = [m_1; ...; m_K]``,
    ``z = W u + b``.

    ``H`` ``(B, L, D)`` are the frozen encoder's token states, ``P_k`` ``(D, n_latent)`` one
    projection per class (``K`` = number of classes, as the reference requires), ``m_k`` the mean
    of ``C_k`` over the document's real tokens (the reference averages over padding too, which
    lets padding dominate short texts), and ``W`` ``(C, K * n_latent)`` a linear classifier.
    Trainable parameters: ``K*D*n + K*K*n + K`` (4,622 for D=768, K=2, n=3, as the reference).

    Args:
        n_latent: width ``n`` of each concept space (reference: 3; 128 in its best IMDB row).
        dropout: dropout on the pooled features before the classifier.

    Outputs: ``logits``, ``embeddings`` (the pooled ``u``, ``(B, K*n)``), ``space_activations``
    ``(K, B, L, n)`` and ``token_mask`` ``(B, L)``, which the ``space`` loss reads.

    Reference: Tytarenko & Amin. Breaking Free Transformer Models: Task-specific Context
    Attribution Promises Improved Generalizability Without Fine-tuning Pre-trained LLMs.
    arXiv:2401.16638
    """

    name = "space"
    input = "token_states"
    provides = frozenset({"logits", "embeddings", "space_activations", "token_mask"})

    def __init__(
        self, *, in_dim: int, num_classes: int, n_latent: int = 3, dropout: float = 0.0
    ) -> None:
        super().__init__()
        check(n_latent >= 1, "n_latent >= 1", n_latent=n_latent)
        check(0 <= dropout < 1, "0 <= dropout < 1", dropout=dropout)
        self.n_latent, self.dropout = int(n_latent), dropout
        self.num_spaces = int(num_classes)
        self.embedding_dim = self.num_spaces * self.n_latent
        # all K projections P_k side by side, no bias (as the reference's Linear(bias=False))
        self.projections = nn.Linear(in_dim, self.num_spaces * self.n_latent, bias=False)
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def spaces(self, states: torch.Tensor) -> torch.Tensor:
        """``(B, L, D)`` token states -> ``(K, B, L, n)`` tanh activations."""
        b, length, _ = states.shape
        c = torch.tanh(self.projections(states))
        return c.view(b, length, self.num_spaces, self.n_latent).permute(2, 0, 1, 3)

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutputs:
        states = inputs["token_states"]
        mask = inputs.get("token_mask")
        if mask is None:
            mask = torch.ones(states.shape[:2], device=states.device)
        mask = mask.to(states.dtype)
        activations = self.spaces(states)
        pooled = masked_token_mean(activations, mask)  # (K, B, n)
        u = pooled.permute(1, 0, 2).reshape(states.shape[0], self.embedding_dim)
        return ModelOutputs(
            logits=self.classifier(self.drop(u)),
            embeddings=u,
            extras={"space_activations": activations, "token_mask": mask},
        )
