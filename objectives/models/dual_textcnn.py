"""LatentG's DualTextCNN network (Sevinç 2025): encoder -> latent ``z`` -> classifier and
decoder.

The network alone, shared by the ``dual_textcnn`` and ``latentg_student`` heads
(:mod:`losstune.objectives.models.latentg`) and by the LatentG teacher
(:mod:`losstune.objectives.models.teacher`).
"""

from __future__ import annotations

import torch
from torch import nn

from losstune.objectives._checks import check

#: Smallest input width the three unpadded conv blocks can read (36 -> 16 -> 6 -> 1).
MIN_IN_DIM = 36


class _BatchNorm1d(nn.BatchNorm1d):
    """BatchNorm that uses its running statistics for a training batch of one example (a
    ragged last batch), where batch statistics do not exist."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return nn.functional.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                self.eps,
            )
        return super().forward(x)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, 3), _BatchNorm1d(c_out), nn.ReLU(),
        nn.Conv1d(c_out, c_out, 3), _BatchNorm1d(c_out), nn.ReLU(),
        nn.MaxPool1d(2),
    )


class DualTextCNN(nn.Module):
    """Upstream's ``DualTextCNN`` with a configurable width.

    * encoder: 3 blocks of [Conv1d(k=3, no padding) -> BN -> ReLU] x 2 -> MaxPool(2), channels
      ``w, 2w, 4w`` (upstream 64, 128, 256), then global average pooling -> ``4w``;
    * latent: Linear(4w -> latent_dim), no activation (``z``);
    * classifier: ``latent_dim -> 128 -> 64 -> C`` with BN + ReLU after the hidden layers;
    * decoder: ``latent_dim -> 64 -> 128 -> 256 -> in_dim`` with ReLU between layers (none on the
      output, which reconstructs a signed vector).
    """

    def __init__(self, *, in_dim: int, num_classes: int, latent_dim: int = 32,
                 width: int = 64) -> None:
        super().__init__()
        check(in_dim >= MIN_IN_DIM, f"in_dim >= {MIN_IN_DIM}", in_dim=in_dim)
        check(latent_dim >= 1, "latent_dim >= 1", latent_dim=latent_dim)
        check(width >= 1, "width >= 1", width=width)
        self.encoder = nn.Sequential(
            _block(1, width), _block(width, 2 * width), _block(2 * width, 4 * width),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        )
        self.to_latent = nn.Linear(4 * width, latent_dim)
        self.classifier = nn.Sequential(
            nn.Linear(latent_dim, 128), _BatchNorm1d(128), nn.ReLU(),
            nn.Linear(128, 64), _BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, num_classes),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 64), nn.ReLU(),
            nn.Linear(64, 128), nn.ReLU(),
            nn.Linear(128, 256), nn.ReLU(),
            nn.Linear(256, in_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits, reconstruction, latent)`` as upstream's forward returns them."""
        z = self.to_latent(self.encoder(x.unsqueeze(1)))
        return self.classifier(z), self.decoder(z), z
