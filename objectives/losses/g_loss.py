"""G-Loss: label propagation over the minibatch's similarity graph (Sharma et al., LoG 2025)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from losstune.objectives.losses.base import BaseLoss, Batch, check
from losstune.objectives.types import ModelOutputs

Variant = Literal["paper", "faithful"]
_TINY = 1e-300


def propagation_matrix(embeddings: torch.Tensor, sigma: float) -> torch.Tensor:
    """Row-stochastic ``T`` ``(B, B)`` of the reference's dense Gaussian graph, in float64.

    ``ĥ = h/|h|``; ``W_ij = exp(-|ĥ_i - ĥ_j|^2 / (2 sigma^2))``, ``W_ii = 0``; ``A = W + W^T``;
    ``Â = D^{-1/2} A D^{-1/2}`` (``D`` = row sums; non-finite entries of ``D^{-1/2}`` become
    1e-10 as in the reference); then ``Â`` is column-normalised and the result row-normalised.
    The kernel is computed in float64 (the reference computes it in float32 first, where small
    sigma underflows to all-zero rows).
    """
    h = F.normalize(embeddings.to(torch.float64), dim=-1)
    # |h_i - h_j|^2 from the Gram matrix: O(B^2) memory instead of a (B, B, E) difference
    # tensor (which made the graph dominate a trial); equal to ~1e-15 in float64
    sq = (h * h).sum(-1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (h @ h.T)).clamp_min(0.0)
    w = torch.exp(-d2 / (2.0 * sigma**2))
    w = w * (1.0 - torch.eye(len(h), dtype=w.dtype, device=w.device))
    a = w + w.T
    d_inv_sqrt = a.sum(dim=1).pow(-0.5)
    d_inv_sqrt = torch.where(torch.isfinite(d_inv_sqrt), d_inv_sqrt,
                             torch.full_like(d_inv_sqrt, 1e-10))
    a_hat = d_inv_sqrt[:, None] * a * d_inv_sqrt[None, :]
    a_hat = a_hat / a_hat.sum(dim=0, keepdim=True).clamp_min(_TINY)
    return a_hat / a_hat.sum(dim=1, keepdim=True).clamp_min(_TINY)


def propagate_labels(
    transition: torch.Tensor, labels: torch.Tensor, labelled: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Closed-form (harmonic) label propagation: ``F_U = (I - T_UU)^{-1} T_UL Y_L``.

    Returns the ``(|U|, C)`` label distributions of the unlabelled rows (in float64); rows sum to
    1 (Zhu & Ghahramani 2002; the infinite-iteration clamped propagation, no spreading factor).
    """
    lab = labelled.bool()
    t_uu = transition[~lab][:, ~lab]
    t_ul = transition[~lab][:, lab]
    y_l = F.one_hot(labels[lab], num_classes).to(transition.dtype)
    eye = torch.eye(len(t_uu), dtype=transition.dtype, device=transition.device)
    rhs = t_ul @ y_l
    solution, info = torch.linalg.solve_ex(eye - t_uu, rhs)
    if bool(info.any()) or not bool(torch.isfinite(solution).all()):
        # A group of unlabelled rows with (numerically) no edge to any labelled row makes
        # I - T_UU singular (small sigma). A tiny ridge keeps the solve defined: such rows get
        # no label mass, which the paper variant then leaves out.
        solution = torch.linalg.solve((1.0 + 1e-9) * eye - t_uu, rhs)
    return solution


def label_mask(batch_size: int, gamma: float, device: torch.device | None = None) -> torch.Tensor:
    """Which examples keep their label: a random permutation's first ``γ·B`` ranks.

    Drawn with torch's global RNG (which the trainer seeds), so runs replay exactly.
    """
    n_labelled = sum(1 for i in range(batch_size) if i < gamma * batch_size)
    order = torch.randperm(batch_size)
    mask = torch.zeros(batch_size, dtype=torch.bool)
    mask[order[:n_labelled]] = True
    return mask.to(device) if device is not None else mask


class GLoss(BaseLoss):
    """G-Loss mixed with cross-entropy: ``L = (1 - lam) * CE(z, y) + lam * G``.

    Per batch, a random fraction ``gamma`` of the examples keeps its labels (set ``L``), the rest
    (``U``) hides them; labels are propagated over the Gaussian similarity graph of the
    (L2-normalised) embeddings in closed form, ``F_U = (I - T_UU)^{-1} T_UL Y_L``, and ``G``
    scores the propagated labels against the hidden ones:

    * ``variant="paper"`` (default): ``G = -mean_{i in U} log F_U[i, y_i]``, the negative
      log-likelihood of the propagated labels. Examples of ``U`` whose class has no labelled
      example in the batch are left out: they can never receive mass (``F_U[i, y_i] = 0``
      whatever the embeddings), so their term is infinite and has no gradient.
    * ``variant="faithful"``: the reference code, ``G = CE_w(F_U as logits, y_U) / |U|`` with
      sklearn-"balanced" class weights ``w_c = N / (C n_c)`` (training counts) and its second
      division by ``|U|``; the CE part is weighted the same way. It feeds probabilities as logits,
      which gives the loss a floor (log(1 + 1/e) for two perfect classes) and damped gradients.

    Args:
        sigma: Gaussian kernel width on the unit sphere, where distances lie in ``[0, 2]``
            (reference default 0.1; README example 0.667, the default here; tuned R8 value 0.253).
        gamma: fraction of the batch that **keeps** its labels (masking rate ``1 - gamma``;
            reference 0.7).
        lam: weight of ``G``; ``1 - lam`` weighs CE (README example 0.8; stable 0.7-0.9).
            ``lam = 1`` is the reference's standalone (unsupervised) mode, ``lam = 0`` plain CE.
        variant: ``paper`` or ``faithful`` (see above).

    References:
        Sharma, Agarwal, Kumar. G-Loss: Graph-guided Fine-tuning of Language Models. LoG 2025.
        arXiv:2604.25853 (code: github.com/saditya13/G-Loss-LoG)
        Zhu, Ghahramani. Learning from Labeled and Unlabeled Data with Label Propagation.
        CMU-CALD-02-107, 2002.

    Inputs:
        ``outputs.logits`` ``(B, C)`` and ``outputs.embeddings`` ``(B, E)`` (use the
        ``projection`` head: a trainable projection of the frozen sentence embedding); class
        indices; ``class_counts`` for the faithful weights (trainer). The label mask is drawn
        with torch's global RNG, so a seeded run replays exactly on CPU.

    Relations:
        A standalone loss that mixes CE itself: put ``g_loss`` in ``loss.choices`` (not next to
        ``ce``; as an auxiliary term fix ``loss.g_loss.lam`` to 1 so CE is not counted twice).
        Its terms are logged as ``g_loss.ce`` = ``(1 - lam) CE`` and ``g_loss.graph`` =
        ``lam G``. Unlike the reference, the CE and graph parts share one forward pass (the
        encoder is frozen here). Prediction uses the classifier (``eval.rule: argmax``).

    Example:
        ``GLoss(sigma=0.25, gamma=0.5).compute(logits, embeddings, labels)`` returns
        ``{"ce": ..., "graph": ...}``.
    """

    name = "g_loss"
    display_name = "G-Loss"
    requires = frozenset({"logits", "embeddings"})
    targets = "index"
    single_label_only = True
    sub_terms = ("ce", "graph")

    def __init__(
        self,
        *,
        sigma: float = 0.667,
        gamma: float = 0.7,
        lam: float = 0.8,
        variant: Variant = "paper",
        class_counts: Sequence[int] | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        check(sigma > 0, "sigma > 0", sigma=sigma)
        check(0 < gamma < 1, "0 < gamma < 1", gamma=gamma)
        check(0 <= lam <= 1, "0 <= lam <= 1", lam=lam)
        if variant not in ("paper", "faithful"):
            raise ValueError(f"variant must be one of ['faithful', 'paper'], but got {variant!r}")
        self.sigma, self.gamma, self.lam, self.variant = sigma, gamma, lam, variant
        weight = torch.zeros(0)
        if class_counts is not None:
            counts = torch.as_tensor(class_counts, dtype=torch.float64).clamp_min(1.0)
            weight = (counts.sum() / (len(counts) * counts)).to(torch.float32)
        self.register_buffer("class_weight", weight, persistent=False)

    def _weights(self, num_classes: int, dtype: torch.dtype) -> torch.Tensor | None:
        if self.variant != "faithful" or self.class_weight.numel() == 0:
            return None
        if self.class_weight.numel() != num_classes:
            raise ValueError(
                f"class_counts has {self.class_weight.numel()} classes, logits have {num_classes}"
            )
        return self.class_weight.to(dtype)

    def graph_term(
        self, embeddings: torch.Tensor, labels: torch.Tensor, labelled: torch.Tensor,
        num_classes: int,
    ) -> torch.Tensor:
        """``G`` (unweighted by ``lam``) for a given label mask, in float64."""
        lab = labelled.bool()
        n_unlabelled = int((~lab).sum())
        if n_unlabelled == 0 or n_unlabelled == len(lab):
            return (embeddings.to(torch.float64) * 0.0).sum()
        f_u = propagate_labels(propagation_matrix(embeddings, self.sigma), labels, lab,
                               num_classes)
        y_u = labels[~lab]
        if self.variant == "faithful":
            weight = self._weights(num_classes, torch.float64)
            return F.cross_entropy(f_u, y_u, weight=weight) / n_unlabelled
        reachable = torch.zeros(num_classes, dtype=torch.bool, device=labels.device)
        reachable[labels[lab]] = True
        keep = reachable[y_u]
        if not bool(keep.any()):
            return (f_u * 0.0).sum()
        picked = f_u[keep].gather(1, y_u[keep, None]).squeeze(1)
        return -torch.log(picked.clamp_min(_TINY)).mean()

    def compute(
        self,
        logits: torch.Tensor,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        labelled: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``{"ce": (1-lam) CE, "graph": lam G}``; ``labelled`` ``(B,)`` bool fixes the label
        mask (default: a fresh random mask with ``gamma * B`` labelled examples)."""
        num_classes = logits.shape[1]
        ce = F.cross_entropy(logits, labels, weight=self._weights(num_classes, logits.dtype))
        if self.lam == 0:
            graph = (embeddings * 0.0).sum()
        else:
            if labelled is None:
                labelled = label_mask(len(labels), self.gamma, labels.device)
            graph = self.graph_term(embeddings, labels, labelled, num_classes).to(logits.dtype)
        return {"ce": (1.0 - self.lam) * ce, "graph": self.lam * graph}

    def forward(self, outputs: ModelOutputs, batch: Batch) -> dict[str, torch.Tensor]:
        if batch.y is None:
            raise ValueError("loss 'g_loss' needs single-label targets; this dataset is "
                             "multi-label")
        return self.compute(outputs.logits, outputs.get("embeddings"), batch.y)


__all__ = ["GLoss", "label_mask", "propagate_labels", "propagation_matrix"]
