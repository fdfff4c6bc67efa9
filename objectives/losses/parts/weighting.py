"""Per-entry weights of the BCE family."""

from __future__ import annotations

import math

import torch


def class_balanced_weight(class_counts: torch.Tensor, beta: float) -> torch.Tensor:
    """Cui et al. (2019) effective-number weights ``(1 - beta) / (1 - beta**n_c)``, shape ``(C,)``.

    ``beta = 0`` gives weight 1 for every class (plain BCE). Used for positives and negatives alike
    (the reference's ``CB_mode='by_class'``).
    """
    counts = class_counts.to(torch.float64)
    power = torch.pow(torch.as_tensor(beta, dtype=torch.float64), counts)
    weight = (1.0 - beta) / (1.0 - power)
    return weight.to(class_counts.dtype if class_counts.is_floating_point() else torch.float32)


def rebalanced_weight(
    targets: torch.Tensor, class_counts: torch.Tensor, *, alpha: float, beta: float, mu: float
) -> torch.Tensor:
    """Wu et al. (2020) re-balanced weights, smoothed, shape ``(B, C)``.

    ``r_bc = (1/n_c) / sum_{j in positives(b)} 1/n_j`` for every class c, then
    ``w = alpha + sigmoid(beta * (r - mu))`` which lies in ``[alpha, alpha + 1]``. A document with
    no positive label has ``r = inf`` and weight ``alpha + 1`` (``alpha + 1/2`` when ``beta = 0``,
    like every other entry; the reference computes ``0 * inf = NaN`` there).
    """
    inv = 1.0 / class_counts.to(targets.dtype)
    repeat = (targets * inv).sum(dim=1, keepdim=True)
    ratio = inv.unsqueeze(0) / repeat
    arg = torch.where(
        torch.isinf(ratio),
        torch.full_like(ratio, math.inf if beta > 0 else 0.0),
        beta * (ratio - mu),
    )
    return alpha + torch.sigmoid(arg)
