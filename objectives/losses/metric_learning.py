"""Deep-metric-learning terms: thin adapters over pytorch-metric-learning (PML).

The fine-grained emotion-recognition study this family comes from (KoBERT + CE + triplet + ArcFace;
docs/references.md) combines ``r_ce * CE + r_tri * triplet + r_arc * ArcFace`` on a projected
sentence embedding. Here CE is the ``ce`` loss, and the two metric terms below are added as
auxiliary terms of a weighted sum (``loss.auxiliary: [triplet, arcface]`` in a study file, weights
``weight.triplet`` and ``weight.arcface``). The maths is PML's; these classes only choose its
parts, check the knobs and read ``outputs.embeddings``.

Changed from the reference code on purpose: the ArcFace class proxies are parameters of the loss
and are trained with the model (the trainer optimises every parameter of the loss); the
reference never added them to its optimiser. Triplets come from PML's miners instead of the
reference's hand-built tuple, whose negatives skipped one class.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch

from losstune.objectives.losses.base import BaseLoss, Batch, check
from losstune.objectives.types import ModelOutputs

if TYPE_CHECKING:
    from pytorch_metric_learning import distances, miners

# pytorch-metric-learning is imported when one of these losses is built, not with the loss
# registry: it loads scipy.stats, seconds of start-up that most studies never use.

Miner = Literal["batch_hard", "semi_hard", "all"]
Distance = Literal["squared_l2", "l2", "cosine"]


def _distance(name: str) -> distances.BaseDistance:
    from pytorch_metric_learning import distances

    if name == "squared_l2":
        return distances.LpDistance(normalize_embeddings=True, p=2, power=2)
    if name == "l2":
        return distances.LpDistance(normalize_embeddings=True, p=2, power=1)
    return distances.CosineSimilarity()


def _labels(batch: Batch, name: str) -> torch.Tensor:
    if batch.y is None:
        raise ValueError(f"loss {name!r} needs single-label targets; this dataset is multi-label")
    return batch.y


class TripletLoss(BaseLoss):
    """Triplet margin loss on L2-normalised embeddings (PML ``TripletMarginLoss``).

    ``L = mean_{(a,p,n) in T, l > 0} l``, ``l = [d(a,p) - d(a,n) + margin]_+``, where ``T`` is the
    miner's set of triplets (anchor and positive share a class, the negative does not) and
    the mean runs over triplets with a positive loss (PML's ``AvgNonZeroReducer``). With the
    cosine similarity the sign flips: ``l = [s(a,n) - s(a,p) + margin]_+``.

    Args:
        margin: the margin, in the distance's units; for ``squared_l2`` on the unit sphere
            distances lie in ``[0, 4]`` (seed: 0.3; best run 0.3).
        miner: ``all`` (every valid triplet of the batch, the seed's exhaustive tuple),
            ``semi_hard`` (negatives farther than the positive but inside the margin, PML
            ``TripletMarginMiner``) or ``batch_hard`` (hardest positive and negative per anchor,
            PML ``BatchHardMiner``).
        distance: ``squared_l2`` (the seed's ``LpDistance(power=2)``), ``l2`` or ``cosine``.

    References:
        Schroff, Kalenichenko, Philbin. FaceNet: A Unified Embedding for Face Recognition and
        Clustering. CVPR 2015. arXiv:1503.03832
        Hermans, Beyer, Leibe. In Defense of the Triplet Loss for Person Re-Identification.
        arXiv:1703.07737 (batch-hard mining)
        Musgrave, Belongie, Lim. PyTorch Metric Learning. arXiv:2008.09164

    Inputs:
        ``outputs.embeddings`` ``(B, E)`` (e.g. the ``projection`` head); class indices
        (single-label data only).

    Relations:
        An auxiliary term next to ``ce`` (seed's best run: CE 0.15, triplet 0.4, ArcFace 0.45,
        i.e. ``weight.triplet`` about 2.7 relative to CE). A batch without any same-class pair
        has no triplet and gives 0 (with a zero gradient).

    Example:
        ``TripletLoss(margin=0.3, miner="semi_hard").compute(embeddings, labels)``.
    """

    name = "triplet"
    display_name = "Triplet"
    requires = frozenset({"embeddings"})
    targets = "index"
    single_label_only = True

    def __init__(
        self, *, margin: float = 0.3, miner: Miner = "all", distance: Distance = "squared_l2"
    ) -> None:
        super().__init__()
        check(margin >= 0, "margin >= 0", margin=margin)
        if miner not in ("batch_hard", "semi_hard", "all"):
            raise ValueError(
                f"miner must be one of ['all', 'batch_hard', 'semi_hard'], but got {miner!r}"
            )
        if distance not in ("squared_l2", "l2", "cosine"):
            raise ValueError(
                f"distance must be one of ['cosine', 'l2', 'squared_l2'], but got {distance!r}"
            )
        self.margin, self.miner, self.distance = margin, miner, distance
        from pytorch_metric_learning import losses, miners

        self._loss = losses.TripletMarginLoss(margin=margin, distance=_distance(distance))
        self._miner: miners.BaseMiner | None = None
        if miner == "semi_hard":
            self._miner = miners.TripletMarginMiner(
                margin=margin, type_of_triplets="semihard", distance=_distance(distance)
            )
        elif miner == "batch_hard":
            self._miner = miners.BatchHardMiner(distance=_distance(distance))

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss of ``(B, E)`` embeddings with ``(B,)`` class indices."""
        tuples = self._miner(embeddings, labels) if self._miner is not None else None
        return self._loss(embeddings, labels, tuples)

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        return self.compute(outputs.get("embeddings"), _labels(batch, self.name))


class ArcFaceLoss(BaseLoss):
    """Additive angular margin loss (ArcFace; PML ``ArcFaceLoss``) with trained class proxies.

    ``L = -mean_b log( e^{s cos(θ_y + m)} / (e^{s cos(θ_y + m)} + Σ_{j≠y} e^{s cos θ_j}) )``
    with ``y = y_b``, ``θ_j`` the angle between embedding ``e_b`` and proxy ``W_j`` (both
    normalised), ``s`` the scale and ``m`` the margin (PML keeps the target logit monotone
    past ``θ = π - m``).

    Args:
        margin: angular margin **in degrees**, the unit of the installed PML 2.x ``ArcFaceLoss``
            (it converts with ``np.radians``). Default 17.19° = 0.3 rad: the seed passed
            ``0.3`` meaning radians, which PML read as 0.3° (practically no margin); pass
            ``margin=0.3`` to replay that. The ArcFace paper uses 0.5 rad = 28.65°.
        scale: logit scale ``s`` (seed: 8, hard-coded; ArcFace paper: 64).

    References:
        Deng, Guo, Xue, Zafeiriou. ArcFace: Additive Angular Margin Loss for Deep Face
        Recognition. CVPR 2019. arXiv:1801.07698
        Musgrave, Belongie, Lim. PyTorch Metric Learning. arXiv:2008.09164

    Inputs:
        ``outputs.embeddings`` ``(B, E)`` with ``E = embedding_dim`` (filled by the trainer from
        the head); class indices. The proxies ``W`` ``(E, C)`` are ``nn.Parameter`` s of this
        module and are optimised with the model.

    Relations:
        ``margin = 0`` is softmax cross-entropy on ``s * cos(e, W)`` (normalised softmax). An
        auxiliary term next to ``ce`` and ``triplet``.

    Example:
        ``ArcFaceLoss(num_classes=8, embedding_dim=128).compute(embeddings, labels)``.
    """

    name = "arcface"
    display_name = "ArcFace"
    requires = frozenset({"embeddings"})
    targets = "index"
    single_label_only = True

    def __init__(
        self,
        *,
        margin: float = math.degrees(0.3),
        scale: float = 8.0,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        check(0 <= margin < 90, "0 <= margin < 90", margin=margin)
        check(scale > 0, "scale > 0", scale=scale)
        if num_classes is None or embedding_dim is None:
            raise ValueError(
                "loss 'arcface' needs num_classes and embedding_dim (the trainer passes them, "
                "direct callers must too)"
            )
        check(num_classes >= 1, "num_classes >= 1", num_classes=num_classes)
        check(embedding_dim >= 1, "embedding_dim >= 1", embedding_dim=embedding_dim)
        self.margin, self.scale = margin, scale
        from pytorch_metric_learning import losses

        self._loss = losses.ArcFaceLoss(
            num_classes=num_classes, embedding_size=embedding_dim, margin=margin, scale=scale
        )

    @property
    def proxies(self) -> torch.nn.Parameter:
        """The class proxies ``W`` ``(E, C)``."""
        return self._loss.W

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss of ``(B, E)`` embeddings with ``(B,)`` class indices."""
        return self._loss(embeddings, labels)

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        return self.compute(outputs.get("embeddings"), _labels(batch, self.name))
