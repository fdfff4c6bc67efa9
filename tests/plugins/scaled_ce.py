"""A test plugin loss with a knob its code gives no search space (declared in study files)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from losstune.objectives.losses import BaseLoss, Batch, register_loss
from losstune.objectives.models.outputs import ModelOutputs
from losstune.search_spaces import register_loss_space


class ScaledCrossEntropyLoss(BaseLoss):
    """Cross-entropy on temperature-scaled logits.

    ``L = CE(z / temperature, y)``

    Args:
        temperature: divides the logits (> 0).

    References:
        none (a test fixture).

    Inputs:
        ``outputs.logits``; class indices.
    """

    name = "scaled_ce"
    display_name = "Scaled CE"
    targets = "index"
    single_label_only = True

    def __init__(self, *, temperature: float = 1.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"`temperature > 0` must hold, but got temperature={temperature}.")
        self.temperature = temperature

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits / self.temperature, labels)

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        assert batch.y is not None
        return self.compute(outputs.logits, batch.y)


register_loss(ScaledCrossEntropyLoss, overwrite=True)
register_loss_space("scaled_ce", {})  # nothing searched by default
