"""Set-overlap losses on softmax probabilities: Tversky and Dice (LatentG repository extras)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from losstune.objectives.losses.base import BaseLoss, Batch, check
from losstune.objectives.types import ModelOutputs


def soft_counts(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class soft ``(TP, FP, FN)`` ``(C,)`` of softmax probabilities vs one-hot labels,
    summed over the batch."""
    p = torch.softmax(logits, dim=1)
    y = F.one_hot(labels, logits.shape[1]).to(p.dtype)
    tp = (p * y).sum(dim=0)
    fp = (p * (1.0 - y)).sum(dim=0)
    fn = ((1.0 - p) * y).sum(dim=0)
    return tp, fp, fn


def _labels(batch: Batch, name: str) -> torch.Tensor:
    if batch.y is None:
        raise ValueError(f"loss {name!r} needs single-label targets (it uses a softmax)")
    return batch.y


class TverskyLoss(BaseLoss):
    """Tversky loss: ``L = 1 - mean_c (TP_c + eps) / (TP_c + alpha FP_c + beta FN_c + eps)``.

    ``TP_c = sum_b p_bc y_bc``, ``FP_c = sum_b p_bc (1 - y_bc)``, ``FN_c = sum_b (1 - p_bc) y_bc``
    with ``p = softmax(z)`` and one-hot ``y``: soft counts over the whole batch, one index per
    class, averaged over all classes (a class absent from the batch scores about 0 and pushes its
    probability down).

    Args:
        alpha: weight of false positives (reference: 0.5).
        beta: weight of false negatives (reference: 0.5); ``alpha = beta = 0.5`` is Dice.
        eps: smoothing added to numerator and denominator (reference: 1e-7).

    References:
        Salehi, Erdogmus, Gholipour. Tversky Loss Function for Image Segmentation Using 3D Fully
        Convolutional Deep Networks. MLMI 2017. arXiv:1706.05721
        Sevinç. arXiv:2504.07245 (the repository's ``tversky_loss.py``; its dataset yields class
        indices, so the one-hot conversion is done here).

    Inputs:
        ``outputs.logits`` ``(B, C)``; class indices (single-label data).

    Relations:
        ``dice`` is the ``alpha = beta = 0.5`` case (up to eps). Often added to ``ce`` as an
        auxiliary term for class imbalance.

    Example:
        ``TverskyLoss(alpha=0.3, beta=0.7).compute(logits, labels)``.
    """

    name = "tversky"
    display_name = "Tversky"
    targets = "index"
    single_label_only = True

    def __init__(self, *, alpha: float = 0.5, beta: float = 0.5, eps: float = 1e-7) -> None:
        super().__init__()
        check(alpha >= 0, "alpha >= 0", alpha=alpha)
        check(beta >= 0, "beta >= 0", beta=beta)
        check(eps > 0, "eps > 0", eps=eps)
        self.alpha, self.beta, self.eps = alpha, beta, eps

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        tp, fp, fn = soft_counts(logits, labels)
        index = (tp + self.eps) / (tp + self.alpha * fp + self.beta * fn + self.eps)
        return 1.0 - index.mean()

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        return self.compute(outputs.logits, _labels(batch, self.name))


class DiceLoss(BaseLoss):
    """Soft Dice loss: ``L = 1 - mean_c (2 TP_c + eps) / (2 TP_c + FP_c + FN_c + eps)``.

    ``2 TP + FP + FN = sum_b p_bc + sum_b y_bc``; soft counts as in ``tversky``.

    Args:
        eps: smoothing (reference: 1e-6).

    References:
        Milletari, Navab, Ahmadi. V-Net: Fully Convolutional Neural Networks for Volumetric
        Medical Image Segmentation. 3DV 2016. arXiv:1606.04797
        Sevinç. arXiv:2504.07245 (the repository's ``dice_loss.py``).

    Inputs:
        ``outputs.logits`` ``(B, C)``; class indices (single-label data).

    Relations:
        ``tversky`` with ``alpha = beta = 0.5``.

    Example:
        ``DiceLoss().compute(logits, labels)``.
    """

    name = "dice"
    display_name = "Dice"
    targets = "index"
    single_label_only = True

    def __init__(self, *, eps: float = 1e-6) -> None:
        super().__init__()
        check(eps > 0, "eps > 0", eps=eps)
        self.eps = eps

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        tp, fp, fn = soft_counts(logits, labels)
        return 1.0 - ((2.0 * tp + self.eps) / (2.0 * tp + fp + fn + self.eps)).mean()

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        return self.compute(outputs.logits, _labels(batch, self.name))
