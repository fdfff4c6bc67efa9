"""The balanced BCE family for long-tailed multi-label classification (Huang et al., EMNLP 2021).

Every member is one computation,

    L = loss_weight * mean_{b,c} [ m_bc * w'_bc * BCE(z'_bc, y_bc) ]

assembled from three optional parts (:mod:`losstune.objectives.losses.parts`):

* weighting ``w``: class-balanced ``(1-beta)/(1-beta**n_c)`` or rebalanced
  ``alpha + sigmoid(beta * (r_bc - mu))``;
* negative-tolerant regularisation: ``z' = z + b`` (``b_c = -kappa*log(N/n_c - 1)``) and
  ``z' = lam * (z + b)`` on negatives, with negatives' weights divided by ``lam`` when a weight
  exists;
* focal modulation ``m = alpha_t * (1 - p_t)**gamma``, ``p_t = exp(-BCE(z', y))``.

The reduction is the mean over all ``B*C`` entries (the paper writes a sum), as in the reference
code. Each named variant below is a thin preset of :class:`BalancedBCELoss`.

Reference behaviour kept on purpose (and tested against the reference values):

* focal ``alpha = 0.5`` makes ``alpha_t = 1/2`` for every entry: a uniform halving, not a class
  balance. So ``focal`` with ``gamma = 0`` equals ``0.5 * BCE``; pass ``focal_alpha=None`` to drop
  the factor (then ``gamma = 0`` equals BCE exactly);
* in NTR-FL there is no weight, so negatives are not divided by ``lam`` (unlike the paper's
  eq. 6).

Changed on purpose: the bias is not added in place to the caller's logits; class counts are
clamped to ``>= 1`` for the weights and to ``[1, N-1]`` for the bias, so that a class absent from
the training split (common in small subsets) gives finite values instead of the reference's
inf/NaN; the rebalancing weight of a document without positive labels is ``alpha + 1`` (its
ratio is infinite), and ``alpha + 1/2`` like every other entry when ``beta = 0``, where the
reference computes ``0 * inf = NaN``.

References:
    Huang, Giledereli, Köksal, Özgür, Ozkirimli. Balancing Methods for Multi-label Text
    Classification with Long-Tailed Class Distribution. EMNLP 2021. arXiv:2109.04712
    Wu, Huang, Huang, Lin, Wang, Lin. Distribution-Balanced Loss for Multi-Label Classification
    in Long-Tailed Datasets. ECCV 2020. arXiv:2007.09654
    Cui, Jia, Lin, Song, Belongie. Class-Balanced Loss Based on Effective Number of Samples.
    CVPR 2019. arXiv:1901.05555
    Lin, Goyal, Girshick, He, Dollár. Focal Loss for Dense Object Detection. ICCV 2017.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from losstune.objectives.losses.base import BaseLoss, Batch, check
from losstune.objectives.losses.parts import (
    class_balanced_weight,
    focal_factor,
    init_bias_from_counts,
    negative_tolerant,
    rebalanced_weight,
)
from losstune.objectives.types import ModelOutputs


def balanced_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    class_weight: torch.Tensor | None = None,
    rebalance: tuple[torch.Tensor, float, float, float] | None = None,
    bias: torch.Tensor | None = None,
    lam: float | None = None,
    gamma: float | None = None,
    focal_alpha: float | None = 0.5,
    loss_weight: float = 1.0,
) -> torch.Tensor:
    """The family's loss on tensors only.

    Args:
        logits: ``(B, C)`` raw scores.
        targets: ``(B, C)`` multi-hot float targets.
        class_weight: ``(C,)`` per-class weight (class-balanced), or None.
        rebalance: ``(class_counts, alpha, beta, mu)`` for rebalanced weights, or None.
        bias: ``(C,)`` NTR prior bias added to logits, or None.
        lam: NTR negative logit scale, or None for no scaling.
        gamma: focal exponent, or None for no focal modulation.
        focal_alpha: focal alpha (the reference's 0.5), or None.
        loss_weight: constant factor on the mean.
    """
    targets = targets.to(logits.dtype)
    weight: torch.Tensor | None = None
    if class_weight is not None:
        weight = class_weight.to(logits.dtype).unsqueeze(0).expand_as(logits)
    if rebalance is not None:
        counts, alpha, beta, mu = rebalance
        weight = rebalanced_weight(targets, counts.to(logits.dtype), alpha=alpha, beta=beta, mu=mu)
    z = logits
    if bias is not None or lam is not None:
        z, weight = negative_tolerant(
            logits,
            targets,
            bias=None if bias is None else bias.to(logits.dtype),
            lam=1.0 if lam is None else lam,
            weight=weight,
        )
    bce = F.binary_cross_entropy_with_logits(z, targets, reduction="none")
    loss = bce if weight is None else bce * weight
    if gamma is not None:
        loss = focal_factor(bce, targets, gamma=gamma, alpha=focal_alpha) * loss
    return loss_weight * loss.mean()


class BalancedBCELoss(BaseLoss):
    """Shared machinery of the presets; not registered itself (use a named preset)."""

    requires = frozenset({"logits"})
    targets = "multi_hot"

    def _setup(
        self,
        *,
        weighting: Literal["cb", "rebalance"] | None,
        focal: bool,
        ntr: bool,
        class_counts: Sequence[int] | torch.Tensor | None,
        num_train: int | None,
        gamma: float = 2.0,
        focal_alpha: float | None = 0.5,
        cb_beta: float = 0.9,
        map_alpha: float = 0.1,
        map_beta: float = 10.0,
        map_mu: float = 0.9,
        kappa: float = 0.05,
        lam: float = 2.0,
        loss_weight: float = 1.0,
    ) -> None:
        check(loss_weight > 0, "loss_weight > 0", loss_weight=loss_weight)
        if focal:
            check(gamma >= 0, "gamma >= 0", gamma=gamma)
            if focal_alpha is not None:
                check(0 <= focal_alpha <= 1, "0 <= focal_alpha <= 1", focal_alpha=focal_alpha)
        needs_counts = weighting is not None or ntr
        if needs_counts:
            if class_counts is None:
                raise ValueError(
                    f"loss {self.name!r} needs class_counts (positives per class in the training "
                    "split); the trainer passes them, direct callers must too."
                )
            counts = torch.as_tensor(class_counts, dtype=torch.float32)
            check(counts.ndim == 1, "class_counts is a vector", shape=tuple(counts.shape))
            check(bool((counts >= 0).all()), "every class_count >= 0",
                  class_counts=counts.tolist())
            # A class absent from the training split (n_c = 0) counts as 1, the rarest possible
            # class: the reference gives inf/NaN weights there (Huang et al. code, 1/n_c).
            counts = counts.clamp_min(1.0)
        else:
            counts = torch.zeros(0)
        self._weighting = weighting
        self._focal = focal
        self._ntr = ntr
        self._gamma = gamma
        self._focal_alpha = focal_alpha
        self._map = (map_alpha, map_beta, map_mu)
        self._lam = lam
        self._loss_weight = loss_weight
        self.register_buffer("class_counts", counts, persistent=False)
        if weighting == "cb":
            check(0 <= cb_beta < 1, "0 <= beta < 1", beta=cb_beta)
            self.register_buffer(
                "_class_weight", class_balanced_weight(counts, cb_beta), persistent=False
            )
        else:
            self._class_weight = None
        if weighting == "rebalance":
            check(map_alpha >= 0, "alpha >= 0", alpha=map_alpha)
            check(map_beta >= 0, "beta >= 0", beta=map_beta)
            check(map_mu >= 0, "mu >= 0", mu=map_mu)
        if ntr:
            check(kappa >= 0, "kappa >= 0", kappa=kappa)
            check(lam > 0, "lam > 0", lam=lam)
            if num_train is None:
                raise ValueError(
                    f"loss {self.name!r} needs num_train (documents in the training split)."
                )
            self.register_buffer(
                "_bias", init_bias_from_counts(counts, int(num_train), kappa), persistent=False
            )
        else:
            self._bias = None

    def compute(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``(B, C)`` logits against ``(B, C)`` multi-hot targets."""
        return balanced_bce(
            logits,
            targets,
            class_weight=self._class_weight,
            rebalance=(self.class_counts, *self._map) if self._weighting == "rebalance" else None,
            bias=self._bias,
            lam=self._lam if self._ntr else None,
            gamma=self._gamma if self._focal else None,
            focal_alpha=self._focal_alpha,
            loss_weight=self._loss_weight,
        )

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        return self.compute(outputs.logits, batch.y_multi)


class BCELoss(BalancedBCELoss):
    """Binary cross-entropy with logits (BCE), mean over all ``B*C`` entries.

    ``L = -loss_weight * mean_{b,c} [ y log sigmoid(z) + (1-y) log(1 - sigmoid(z)) ]``

    Args:
        loss_weight: constant factor (a pure scale; with Adam it changes little).

    References:
        Huang et al. Balancing Methods for Multi-label Text Classification with Long-Tailed
        Class Distribution. EMNLP 2021. arXiv:2109.04712 (the BCE baseline of Tables 2-3).

    Inputs:
        ``outputs.logits`` ``(B, C)``; multi-hot targets (one-hot for single-label data).

    Relations:
        ``focal`` down-weights easy entries; ``db`` adds rebalancing and NTR. For single-label
        data ``ce`` is the usual choice; BCE on one-hot long-tailed targets converges slowly.

    Example:
        ``BCELoss()(outputs, batch)`` or ``BCELoss().compute(logits, multi_hot)``.
    """

    name = "bce"
    display_name = "BCE"

    def __init__(self, *, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self._setup(weighting=None, focal=False, ntr=False, class_counts=None, num_train=None,
                    loss_weight=loss_weight)


class FocalLoss(BalancedBCELoss):
    """Focal loss (FL) as in the balanced-loss reference code.

    ``L = loss_weight * mean_{b,c} alpha_t (1 - p_t)**gamma BCE(z, y)``, ``p_t = exp(-BCE)``,
    ``alpha_t = focal_alpha`` on positives and ``1 - focal_alpha`` on negatives.

    Args:
        gamma: focusing exponent, ``>= 0`` (paper: 2).
        focal_alpha: 0.5 in the reference, which makes ``alpha_t = 1/2`` everywhere (a constant
            halving, not a class balance); None drops the factor.
        loss_weight: constant factor (paper: 1).

    References:
        Lin et al. Focal Loss for Dense Object Detection. ICCV 2017. arXiv:1708.02002
        Huang et al. Balancing Methods for Multi-label Text Classification with Long-Tailed
        Class Distribution. EMNLP 2021. arXiv:2109.04712

    Inputs:
        ``outputs.logits`` ``(B, C)``; multi-hot targets.

    Relations:
        ``gamma = 0`` with ``focal_alpha=None`` is ``bce``; with the reference alpha it is
        ``0.5 * bce``. ``cb``, ``r_focal`` and ``db`` add weights to it.

    Example:
        ``FocalLoss(gamma=2.0).compute(logits, multi_hot)``.
    """

    name = "focal"
    display_name = "FL"

    def __init__(
        self, *, gamma: float = 2.0, focal_alpha: float | None = 0.5, loss_weight: float = 1.0
    ) -> None:
        super().__init__()
        self.gamma, self.focal_alpha, self.loss_weight = gamma, focal_alpha, loss_weight
        self._setup(weighting=None, focal=True, ntr=False, class_counts=None, num_train=None,
                    gamma=gamma, focal_alpha=focal_alpha, loss_weight=loss_weight)


class ClassBalancedLoss(BalancedBCELoss):
    """Class-balanced focal loss (CB): focal loss weighted per class by the effective number.

    ``L = loss_weight * mean_{b,c} w_c alpha_t (1 - p_t)**gamma BCE(z, y)``,
    ``w_c = (1 - beta) / (1 - beta**n_c)`` (same weight for positives and negatives).

    Args:
        beta: effective-number parameter in ``[0, 1)`` (paper: 0.9); 0 gives unit weights.
        gamma: focal exponent (paper: 2).
        focal_alpha: 0.5 (reference; see ``focal``).
        loss_weight: 10 on Reuters in the paper (5 on PubMed).

    References:
        Cui et al. Class-Balanced Loss Based on Effective Number of Samples. CVPR 2019.
        arXiv:1901.05555
        Huang et al. Balancing Methods for Multi-label Text Classification with Long-Tailed
        Class Distribution. EMNLP 2021. arXiv:2109.04712

    Inputs:
        ``outputs.logits`` ``(B, C)``; multi-hot targets; ``class_counts`` of the training
        split (filled by the trainer).

    Relations:
        ``beta = 0`` with ``loss_weight=1`` is ``focal``. Per-class constant weights cancel
        under Adam for a per-class linear head; ``cb_ntr`` adds NTR.

    Example:
        ``ClassBalancedLoss(class_counts=[100, 10, 2]).compute(logits, multi_hot)``.
    """

    name = "cb"
    display_name = "CB"

    def __init__(
        self,
        *,
        beta: float = 0.9,
        gamma: float = 2.0,
        focal_alpha: float | None = 0.5,
        loss_weight: float = 10.0,
        class_counts: Sequence[int] | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.beta, self.gamma, self.focal_alpha, self.loss_weight = (
            beta, gamma, focal_alpha, loss_weight)
        self._setup(weighting="cb", focal=True, ntr=False, class_counts=class_counts,
                    num_train=None, cb_beta=beta, gamma=gamma, focal_alpha=focal_alpha,
                    loss_weight=loss_weight)


class RebalancedFocalLoss(BalancedBCELoss):
    """Rebalanced focal loss (R-FL): focal loss weighted by ``alpha + sigmoid(beta (r - mu))``.

    ``L = loss_weight * mean_{b,c} r̂_bc alpha_t (1 - p_t)**gamma BCE(z, y)``, with
    ``r_bc = (1/n_c) / sum_{j in pos(b)} 1/n_j`` (class-level over instance-level sampling
    frequency) and ``r̂ = alpha + sigmoid(beta (r - mu))``.

    Args:
        alpha: smoothing floor of the weight (paper: 0.1).
        beta: steepness (paper: 10).
        mu: centre; Reuters 0.9, PubMed 0.05 (mean/median of ``r`` over positive pairs).
        gamma: focal exponent (paper: 2).
        focal_alpha: 0.5 (reference).
        loss_weight: constant factor (paper: 1).

    References:
        Wu et al. Distribution-Balanced Loss for Multi-Label Classification in Long-Tailed
        Datasets. ECCV 2020. arXiv:2007.09654
        Huang et al. Balancing Methods for Multi-label Text Classification with Long-Tailed
        Class Distribution. EMNLP 2021. arXiv:2109.04712

    Inputs:
        ``outputs.logits`` ``(B, C)``; multi-hot targets; ``class_counts`` (trainer).

    Relations:
        ``db`` is R-FL plus NTR.

    Example:
        ``RebalancedFocalLoss(class_counts=counts).compute(logits, multi_hot)``.
    """

    name = "r_focal"
    display_name = "R-FL"

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        beta: float = 10.0,
        mu: float = 0.9,
        gamma: float = 2.0,
        focal_alpha: float | None = 0.5,
        loss_weight: float = 1.0,
        class_counts: Sequence[int] | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.mu, self.gamma = alpha, beta, mu, gamma
        self.focal_alpha, self.loss_weight = focal_alpha, loss_weight
        self._setup(weighting="rebalance", focal=True, ntr=False, class_counts=class_counts,
                    num_train=None, map_alpha=alpha, map_beta=beta, map_mu=mu, gamma=gamma,
                    focal_alpha=focal_alpha, loss_weight=loss_weight)


class NTRFocalLoss(BalancedBCELoss):
    """Negative-tolerant focal loss (NTR-FL): focal loss on NTR-regularised logits.

    ``L = loss_weight * mean_{b,c} alpha_t (1 - p_t)**gamma BCE(z', y)`` with ``z' = z + b`` on
    positives, ``z' = lam (z + b)`` on negatives and ``b_c = -kappa log(N/n_c - 1)``. There is
    no weight, so negatives are not divided by ``lam`` (reference behaviour, unlike eq. 6).

    Args:
        kappa: prior-bias scale (paper: 0.05).
        lam: negative logit scale (paper: 2).
        gamma: focal exponent (paper: 2).
        focal_alpha: 0.5 (reference).
        loss_weight: 1 on Reuters (0.5 on PubMed).

    References:
        Wu et al. ECCV 2020. arXiv:2007.09654
        Huang et al. Balancing Methods for Multi-label Text Classification with Long-Tailed
        Class Distribution. EMNLP 2021. arXiv:2109.04712

    Inputs:
        ``outputs.logits`` ``(B, C)``; multi-hot targets; ``class_counts`` and ``num_train``
        (trainer).

    Relations:
        ``kappa = 0, lam = 1`` is ``focal``; ``db`` adds rebalanced weights.

    Example:
        ``NTRFocalLoss(class_counts=counts, num_train=200).compute(logits, multi_hot)``.
    """

    name = "ntr_focal"
    display_name = "NTR-FL"

    def __init__(
        self,
        *,
        kappa: float = 0.05,
        lam: float = 2.0,
        gamma: float = 2.0,
        focal_alpha: float | None = 0.5,
        loss_weight: float = 1.0,
        class_counts: Sequence[int] | torch.Tensor | None = None,
        num_train: int | None = None,
    ) -> None:
        super().__init__()
        self.kappa, self.lam, self.gamma = kappa, lam, gamma
        self.focal_alpha, self.loss_weight = focal_alpha, loss_weight
        self._setup(weighting=None, focal=True, ntr=True, class_counts=class_counts,
                    num_train=num_train, kappa=kappa, lam=lam, gamma=gamma,
                    focal_alpha=focal_alpha, loss_weight=loss_weight)


class DBNoFocalLoss(BalancedBCELoss):
    """Distribution-balanced loss without focal modulation (DB-0FL): rebalanced weights + NTR.

    ``L = loss_weight * mean_{b,c} w'_bc BCE(z', y)``, ``w' = r̂`` on positives and ``r̂/lam`` on
    negatives, ``z'`` as in ``ntr_focal``, ``r̂`` as in ``r_focal``.

    Args:
        alpha: rebalancing floor (paper: 0.1).
        beta: rebalancing steepness (paper: 10).
        mu: rebalancing centre (Reuters 0.9).
        kappa: prior-bias scale (paper: 0.05).
        lam: negative logit scale (paper: 2).
        loss_weight: 0.5 in the paper.

    References:
        Wu et al. ECCV 2020. arXiv:2007.09654
        Huang et al. Balancing Methods for Multi-label Text Classification with Long-Tailed
        Class Distribution. EMNLP 2021. arXiv:2109.04712

    Inputs:
        ``outputs.logits`` ``(B, C)``; multi-hot targets; ``class_counts`` and ``num_train``.

    Relations:
        ``db`` with ``gamma = 0``, ``focal_alpha=None`` and the same ``loss_weight``.

    Example:
        ``DBNoFocalLoss(class_counts=counts, num_train=200).compute(logits, multi_hot)``.
    """

    name = "db_no_focal"
    display_name = "DB-0FL"

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        beta: float = 10.0,
        mu: float = 0.9,
        kappa: float = 0.05,
        lam: float = 2.0,
        loss_weight: float = 0.5,
        class_counts: Sequence[int] | torch.Tensor | None = None,
        num_train: int | None = None,
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.mu = alpha, beta, mu
        self.kappa, self.lam, self.loss_weight = kappa, lam, loss_weight
        self._setup(weighting="rebalance", focal=False, ntr=True, class_counts=class_counts,
                    num_train=num_train, map_alpha=alpha, map_beta=beta, map_mu=mu,
                    kappa=kappa, lam=lam, loss_weight=loss_weight)


class CBNTRLoss(BalancedBCELoss):
    """Class-balanced focal loss with negative-tolerant regularisation (CB-NTR).

    ``L = loss_weight * mean_{b,c} w'_bc alpha_t (1 - p'_t)**gamma BCE(z', y)`` with the class
    weight ``w_c`` of ``cb`` (divided by ``lam`` on negatives) and ``z'`` of ``ntr_focal``.

    Args:
        beta: CB effective-number parameter (paper: 0.9).
        kappa: prior-bias scale (paper: 0.05).
        lam: negative logit scale (paper: 2).
        gamma: focal exponent (paper: 2).
        focal_alpha: 0.5 (reference).
        loss_weight: 10 in the paper.

    References:
        Cui et al. CVPR 2019. arXiv:1901.05555
        Huang et al. Balancing Methods for Multi-label Text Classification with Long-Tailed
        Class Distribution. EMNLP 2021. arXiv:2109.04712

    Inputs:
        ``outputs.logits`` ``(B, C)``; multi-hot targets; ``class_counts`` and ``num_train``.

    Relations:
        Best overall micro-F1 in Huang et al. Table 2; ``cb`` without NTR.

    Example:
        ``CBNTRLoss(class_counts=counts, num_train=200).compute(logits, multi_hot)``.
    """

    name = "cb_ntr"
    display_name = "CB-NTR"

    def __init__(
        self,
        *,
        beta: float = 0.9,
        kappa: float = 0.05,
        lam: float = 2.0,
        gamma: float = 2.0,
        focal_alpha: float | None = 0.5,
        loss_weight: float = 10.0,
        class_counts: Sequence[int] | torch.Tensor | None = None,
        num_train: int | None = None,
    ) -> None:
        super().__init__()
        self.beta, self.kappa, self.lam, self.gamma = beta, kappa, lam, gamma
        self.focal_alpha, self.loss_weight = focal_alpha, loss_weight
        self._setup(weighting="cb", focal=True, ntr=True, class_counts=class_counts,
                    num_train=num_train, cb_beta=beta, kappa=kappa, lam=lam, gamma=gamma,
                    focal_alpha=focal_alpha, loss_weight=loss_weight)


class DistributionBalancedLoss(BalancedBCELoss):
    """Distribution-balanced loss (DB): rebalanced weights + NTR + focal modulation.

    ``L = loss_weight * mean_{b,c} l_bc``; with ``q = sigmoid(z + b)`` on positives and
    ``q = sigmoid(lam (z + b))`` on negatives: positives ``l = -1/2 r̂ (1-q)**gamma log q``,
    negatives ``l = -1/2 (r̂/lam) q**gamma log(1-q)`` (the 1/2 is the reference focal alpha).

    Args:
        alpha: rebalancing floor (paper: 0.1).
        beta: rebalancing steepness (paper: 10).
        mu: rebalancing centre (Reuters 0.9; PubMed 0.05).
        kappa: prior-bias scale (paper: 0.05).
        lam: negative logit scale (paper: 2).
        gamma: focal exponent (paper: 2).
        focal_alpha: 0.5 (reference).
        loss_weight: 1 in the paper.

    References:
        Wu et al. ECCV 2020. arXiv:2007.09654
        Huang et al. Balancing Methods for Multi-label Text Classification with Long-Tailed
        Class Distribution. EMNLP 2021. arXiv:2109.04712

    Inputs:
        ``outputs.logits`` ``(B, C)``; multi-hot targets; ``class_counts`` and ``num_train``.

    Relations:
        Best tail-class F1 in Huang et al. Table 2 (Reuters macro-F1 64.47); ``db_no_focal``
        without the focal factor, ``r_focal`` without NTR.

    Example:
        ``DistributionBalancedLoss(class_counts=counts, num_train=200)(outputs, batch)``.
    """

    name = "db"
    display_name = "DB"

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        beta: float = 10.0,
        mu: float = 0.9,
        kappa: float = 0.05,
        lam: float = 2.0,
        gamma: float = 2.0,
        focal_alpha: float | None = 0.5,
        loss_weight: float = 1.0,
        class_counts: Sequence[int] | torch.Tensor | None = None,
        num_train: int | None = None,
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.mu = alpha, beta, mu
        self.kappa, self.lam, self.gamma = kappa, lam, gamma
        self.focal_alpha, self.loss_weight = focal_alpha, loss_weight
        self._setup(weighting="rebalance", focal=True, ntr=True, class_counts=class_counts,
                    num_train=num_train, map_alpha=alpha, map_beta=beta, map_mu=mu,
                    kappa=kappa, lam=lam, gamma=gamma, focal_alpha=focal_alpha,
                    loss_weight=loss_weight)
