"""The asymmetric loss (ASL) for multi-label classification, as a losstune plugin."""

from __future__ import annotations

import torch

from losstune.objectives.extend import BaseLoss, Batch, ModelOutputs, check, register_loss
from losstune.search_spaces import FloatDist, register_loss_space

__all__ = ["AsymmetricFocalLoss", "asymmetric_focal"]
__version__ = "0.1.0"


def asymmetric_focal(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma_pos: float,
    gamma_neg: float,
    clip: float,
) -> torch.Tensor:
    """ASL on ``(B, C)`` logits and multi-hot targets, mean over all ``B*C`` entries."""
    p = torch.sigmoid(logits)
    p_neg = (p - clip).clamp(min=0.0) if clip > 0 else p
    eps = torch.finfo(logits.dtype).eps
    pos = targets * (1.0 - p).pow(gamma_pos) * torch.log(p.clamp(min=eps))
    neg = (1.0 - targets) * p_neg.pow(gamma_neg) * torch.log((1.0 - p_neg).clamp(min=eps))
    return -(pos + neg).mean()


class AsymmetricFocalLoss(BaseLoss):
    """Asymmetric loss (ASL): focal modulation with separate exponents for positives and
    negatives, plus a probability margin that discards easy negatives.

    ``L = -mean_{b,c} [ y (1-p)**gamma_pos log p + (1-y) p_m**gamma_neg log(1-p_m) ]`` with
    ``p = sigmoid(z)`` and ``p_m = max(p - clip, 0)``.

    Args:
        gamma_pos: focusing exponent of positives (paper: 0).
        gamma_neg: focusing exponent of negatives (paper: 4).
        clip: probability margin ``m`` shifted off negatives (paper: 0.05).

    References:
        Ridnik, Ben-Baruch, Zamir, Noy, Friedman, Protter, Zelnik-Manor. Asymmetric Loss For
        Multi-Label Classification. ICCV 2021. arXiv:2009.14119

    Inputs:
        ``outputs.logits`` ``(B, C)``; multi-hot targets (one-hot for single-label data).

    Relations:
        ``gamma_pos = gamma_neg = clip = 0`` is BCE; ``gamma_pos = gamma_neg`` with ``clip = 0``
        is focal loss without its alpha.

    Example:
        ``AsymmetricFocalLoss(gamma_neg=2.0)(outputs, batch)``
    """

    name = "asym_focal"
    display_name = "ASL"
    requires = frozenset({"logits"})
    targets = "multi_hot"

    def __init__(
        self, *, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05
    ) -> None:
        super().__init__()
        check(gamma_pos >= 0, "gamma_pos >= 0", gamma_pos=gamma_pos)
        check(gamma_neg >= 0, "gamma_neg >= 0", gamma_neg=gamma_neg)
        check(0 <= clip < 1, "0 <= clip < 1", clip=clip)
        self.gamma_pos, self.gamma_neg, self.clip = gamma_pos, gamma_neg, clip

    def compute(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return asymmetric_focal(logits, targets.to(logits.dtype), gamma_pos=self.gamma_pos,
                                gamma_neg=self.gamma_neg, clip=self.clip)

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        return self.compute(outputs.logits, batch.y_multi)


# Registered on import too, so that `plugins: [losstune_asym_focal]` in a study file works
# without installing the package (the module beside the study file); registering the same class
# again through the entry point changes nothing.
register_loss(AsymmetricFocalLoss)

# The default search space travels with the plugin, as the built-in losses' do.
register_loss_space("asym_focal", {
    "gamma_pos": FloatDist(0.0, 2.0),
    "gamma_neg": FloatDist(0.0, 6.0),
    "clip": FloatDist(0.0, 0.2),
})
