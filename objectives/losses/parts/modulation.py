"""Focal modulation as the balanced-loss reference code applies it."""

from __future__ import annotations

import torch


def focal_factor(
    bce: torch.Tensor, targets: torch.Tensor, *, gamma: float, alpha: float | None
) -> torch.Tensor:
    """``alpha_t * (1 - p_t)**gamma`` with ``p_t = exp(-bce)`` from the *unweighted* BCE.

    ``alpha_t`` is ``alpha`` for positives and ``1 - alpha`` for negatives. The reference uses
    ``alpha = 0.5``, which makes ``alpha_t`` a constant 1/2 for every entry: a uniform halving, not
    a class balance (Huang et al., 2021 code; the original DB code used 2.0). ``alpha=None`` drops
    the factor, so that ``gamma = 0`` gives plain BCE.
    """
    p_t = torch.exp(-bce)
    # (1 - p_t) is exactly 0 for saturated entries in float32; for 0 < gamma < 1 its power has
    # an infinite derivative there (inf * 0 = NaN gradients), so keep it off zero.
    one_minus = (1.0 - p_t).clamp_min(torch.finfo(bce.dtype).tiny)
    factor = one_minus**gamma if gamma != 0 else torch.ones_like(bce)
    if alpha is None:
        return factor
    alpha_t = torch.where(targets > 0.5, alpha, 1.0 - alpha).to(bce.dtype)
    return alpha_t * factor
