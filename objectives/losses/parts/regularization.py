"""Negative-tolerant regularisation (NTR) of logits (Wu et al., 2020; Huang et al., 2021)."""

from __future__ import annotations

import torch


def init_bias_from_counts(
    class_counts: torch.Tensor, num_train: int, kappa: float
) -> torch.Tensor:
    """Class-prior logit bias ``b_c = -kappa * log(N / n_c - 1)``, shape ``(C,)``.

    Equivalent to ``kappa * logit(p_c)`` with ``p_c = n_c / N``. Counts are clamped to
    ``[1, N - 1]`` so that a class absent from (or present in every document of) the training
    split gives a finite bias instead of the reference's inf/NaN.
    """
    counts = class_counts.to(torch.float64).clamp(1.0, max(num_train - 1, 1))
    return (-kappa * torch.log(num_train / counts - 1.0)).to(torch.float32)


def negative_tolerant(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None,
    lam: float,
    weight: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Shift logits by the prior bias and scale negatives' logits by ``lam``.

    Returns ``(z', w')`` with ``z' = (z + b)`` for positives and ``lam * (z + b)`` for negatives;
    when a weight exists, negatives' weights are divided by ``lam`` (the reference skips this when
    there is no weight, e.g. NTR-FL). The caller's tensor is not modified (the reference adds the
    bias in place).
    """
    z = logits + bias if bias is not None else logits
    z = z * targets + lam * z * (1.0 - targets)
    if weight is not None:
        weight = weight / lam * (1.0 - targets) + weight * targets
    return z, weight
