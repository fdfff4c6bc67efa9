"""The space-model regularisers (inter-space and intra-space), masked over padding."""

from __future__ import annotations

import torch

from losstune.objectives.losses.base import BaseLoss, Batch, check
from losstune.objectives.types import ModelOutputs


def _masked_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum(w * v) / sum(w)``, or a zero that keeps the graph when ``sum(w) = 0``."""
    total = weight.sum()
    if float(total) == 0.0:
        return (values * 0.0).sum()
    return (values * weight).sum() / total


def inter_space(
    activations: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    m1: float = 0.5,
    m2: float = 0.5,
) -> torch.Tensor:
    """Label-aware inter-space term (the reference's current version, "v3").

    ``m1 * mean(1 - C_k[b,t,j] : y_bk = 1) + m2 * mean(1 + C_k[b,t,j] : y_bk = 0)``, each mean
    pooled over every matching (b, k), real token t and latent dim j.
    """
    k, b, length, n = activations.shape
    if mask is None:
        mask = torch.ones(b, length, dtype=activations.dtype, device=activations.device)
    m = mask.to(activations.dtype)[None, :, :, None].expand(k, b, length, n)
    pos = (targets.to(activations.dtype) > 0).to(activations.dtype).T[:, :, None, None]
    pos_w = m * pos
    neg_w = m * (1.0 - pos)
    return m1 * _masked_mean(1.0 - activations, pos_w) + m2 * _masked_mean(
        1.0 + activations, neg_w
    )


def intra_space(
    activations: torch.Tensor, mask: torch.Tensor | None = None, *, eps: float = 1e-9
) -> torch.Tensor:
    """``mean_b sum_k sum_j 1 / (Var_t C_k[b,t,j] + eps)``, unbiased variance over real tokens.

    Documents with fewer than two real tokens have no variance and are left out of the mean.
    """
    k, b, length, n = activations.shape
    if mask is None:
        mask = torch.ones(b, length, dtype=activations.dtype, device=activations.device)
    m = mask.to(activations.dtype)[None, :, :, None]
    count = m.sum(dim=2, keepdim=True)  # (1, B, 1, 1)
    mean = (activations * m).sum(dim=2, keepdim=True) / count.clamp_min(1.0)
    var = (((activations - mean) ** 2) * m).sum(dim=2, keepdim=True) / (count - 1).clamp_min(1.0)
    per_doc = (1.0 / (var + eps)).sum(dim=(0, 3)).reshape(b)  # sum over spaces and latents
    valid = (count.reshape(b) >= 2).to(activations.dtype)
    return _masked_mean(per_doc, valid)


class SpaceLoss(BaseLoss):
    """Inter-space and intra-space regularisers of the space model, as two weighted sub-terms.

    With ``C_k[b,t,j]`` the tanh activations of space ``k`` (one per class), token ``t`` and latent
    dim ``j``, averaged over real tokens only:

    ``inter = m1 * mean(1 - C_k[b,t,j] : y_bk = 1) + m2 * mean(1 + C_k[b,t,j] : y_bk = 0)``
    (pushes every token towards +1 in its label's space and -1 elsewhere), and
    ``intra = mean_b sum_k sum_j 1 / (Var_t C_k[b,t,j] + eps)`` (penalises a space that
    collapses all of a document's tokens onto one point; unbiased variance over tokens).

    The trial loss is ``CE + w_inter * inter + w_intra * intra``: put ``ce`` in
    ``loss.choices`` and ``space`` in ``loss.auxiliary``; the weights are
    ``weight.space.inter`` and ``weight.space.intra``.

    Args:
        m1: weight of the own-label part of ``inter`` (reference: 0.5).
        m2: weight of the other-label part of ``inter`` (reference: 0.5).
        eps: added to each variance in ``intra`` (reference: 1e-9; it bounds each term by
            ``1/eps``, so saturated activations give huge values, see Relations).

    References:
        Tytarenko & Amin. Breaking Free Transformer Models: Task-specific Context Attribution
        Promises Improved Generalizability Without Fine-tuning Pre-trained LLMs.
        arXiv:2401.16638 (code: github.com/StepanTita/space-model, loss at 6410eab)

    Inputs:
        ``outputs.space_activations`` ``(K, B, L, n)`` and ``outputs.token_mask`` ``(B, L)``
        (the ``space`` head); multi-hot targets ``(B, K)`` (one-hot for single-label data;
        multi-label: every label with ``y > 0`` counts as own).

    Relations:
        Changed on purpose: the reference's label-aware inter term (its third version) and its
        intra term average over padding tokens as well; here padding is masked out. With a mask
        of ones both equal the reference. The README tables of the reference were produced with
        an older, label-agnostic inter term and weights 0.2 (inter) / 0.001 (intra), which are
        the baseline weights here. The two terms pull against each other (inter saturates the
        activations, whose variance then vanishes), hence intra's tiny weight. ``K`` must equal
        the number of classes.

    Example:
        ``SpaceLoss().compute(activations, one_hot, mask)`` returns
        ``{"inter": ..., "intra": ...}``.
    """

    name = "space"
    display_name = "Space (inter/intra)"
    requires = frozenset({"space_activations", "token_mask"})
    targets = "multi_hot"
    sub_terms = ("inter", "intra")

    def __init__(self, *, m1: float = 0.5, m2: float = 0.5, eps: float = 1e-9) -> None:
        super().__init__()
        check(m1 >= 0, "m1 >= 0", m1=m1)
        check(m2 >= 0, "m2 >= 0", m2=m2)
        check(eps > 0, "eps > 0", eps=eps)
        self.m1, self.m2, self.eps = m1, m2, eps

    def compute(
        self,
        activations: torch.Tensor,
        targets: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``activations`` ``(K, B, L, n)``, ``targets`` ``(B, K)`` multi-hot, ``mask``
        ``(B, L)`` (None: every token is real)."""
        if activations.ndim != 4:
            raise ValueError(
                f"space activations must be (K, B, L, n), but got shape {tuple(activations.shape)}"
            )
        if targets.shape != activations.shape[:2][::-1]:
            raise ValueError(
                f"targets {tuple(targets.shape)} do not match {activations.shape[0]} spaces and "
                f"batch {activations.shape[1]}; the number of spaces must equal the classes"
            )
        return {
            "inter": inter_space(activations, targets, mask, m1=self.m1, m2=self.m2),
            "intra": intra_space(activations, mask, eps=self.eps),
        }

    def forward(self, outputs: ModelOutputs, batch: Batch) -> dict[str, torch.Tensor]:
        return self.compute(
            outputs.get("space_activations"), batch.y_multi, outputs.get("token_mask")
        )
