"""Softmax cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from losstune.objectives.losses.base import BaseLoss, Batch, check
from losstune.objectives.types import ModelOutputs


class CrossEntropyLoss(BaseLoss):
    """Softmax cross-entropy on class indices, mean over the batch.

    ``L = -mean_b log softmax(z_b)[y_b]`` (with label smoothing ``eps``: the target puts
    ``1 - eps + eps/C`` on ``y_b`` and ``eps/C`` elsewhere).

    Args:
        label_smoothing: ``eps`` in ``[0, 1)``; 0 is plain CE.

    References:
        Szegedy et al. Rethinking the Inception Architecture for Computer Vision. CVPR 2016.
        arXiv:1512.00567 (label smoothing)

    Inputs:
        ``outputs.logits`` ``(B, C)``; class indices (single-label data only).

    Relations:
        Use ``bce``/``focal``/``db`` for multi-label data; ``g_loss`` mixes CE in itself; the
        primary term next to ``triplet``, ``arcface``, ``space``, ``tversky`` or ``dice``.

    Example:
        ``CrossEntropyLoss()(outputs, batch)`` or ``CrossEntropyLoss().compute(logits, y)``.
    """

    name = "ce"
    display_name = "CE"
    targets = "index"
    single_label_only = True

    def __init__(self, *, label_smoothing: float = 0.0) -> None:
        super().__init__()
        check(0 <= label_smoothing < 1, "0 <= label_smoothing < 1",
              label_smoothing=label_smoothing)
        self.label_smoothing = label_smoothing

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        if batch.y is None:
            raise ValueError("loss 'ce' needs single-label targets; this dataset is multi-label")
        return self.compute(outputs.logits, batch.y)
