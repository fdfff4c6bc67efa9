"""LatentG-Loss: a teacher's latent space and logits guide a student (Sevinç, 2025), fixed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from losstune.objectives.losses.base import BaseLoss, Batch, check
from losstune.objectives.types import ModelOutputs


def guidance_terms(
    latents: torch.Tensor,
    logits: torch.Tensor,
    teacher_latents: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    sigma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(latent, distance)``, both means over the batch and both differentiable.

    ``latent = mean_i (1 - p_i)`` with ``p_i = exp(-mean_j (s_ij - t_ij)^2 / (2 sigma^2))``, where
    ``s_i = [z_i; o_i]`` and ``t_i = [z^T_i; o^T_i]`` are the student's and the teacher's
    latent-plus-logits descriptors; ``distance = mean_i |o_i - o^T_i|_2``.
    """
    s = torch.cat([latents, logits], dim=1)
    t = torch.cat([teacher_latents, teacher_logits], dim=1).to(s.dtype)
    p = torch.exp(-((s - t) ** 2).mean(dim=1) / (2.0 * sigma**2))
    diff = logits - teacher_logits.to(logits.dtype)
    # sqrt(sum + tiny): the gradient stays finite when a student matches its teacher exactly
    distance = torch.sqrt((diff**2).sum(dim=1) + 1e-24)
    return (1.0 - p).mean(), distance.mean()


class LatentGuidanceLoss(BaseLoss):
    """LatentG: ``L = CE(o, y) * (1 + r * G) + gamma * MSE(x̂, x)``, ``G = alpha * latent +
    beta * distance``, ``r = e / E``.

    ``o`` are the student's logits, ``z`` its latent, ``x̂`` its reconstruction of the input
    vector ``x``; ``z^T`` and ``o^T`` the frozen teacher's latent and logits for the same
    documents; ``e`` the 0-based epoch and ``E`` the number of epochs (set by
    :meth:`on_epoch_start`). The guidance terms, both means over the batch:

    * ``latent = mean_i (1 - p_i)``, ``p_i = exp(-mean_j (s_ij - t_ij)^2 / (2 sigma^2))`` with
      ``s_i = [z_i; o_i]`` and ``t_i = [z^T_i; o^T_i]``: one minus a Gaussian likelihood
      (in ``(0, 1]``) of the student's descriptor around its teacher's;
    * ``distance = mean_i |o_i - o^T_i|_2``: the Euclidean distance between the logits.

    Args:
        alpha: weight of the latent term (reference: 0.5).
        beta: weight of the distance term (reference: 0.5, inert there; see below).
        gamma: weight of the reconstruction MSE (reference student: 75; teacher: 90).
        sigma: width of the latent likelihood, per descriptor dimension (not in the reference,
            which used a fitted mixture density; 1 means unit-variance guidance).
        ramp: scale ``G`` by ``e / E`` (reference: yes); ``False`` uses ``r = 1``.

    References:
        Sevinç, 2025 (LatentG-Loss, DualLatentGNet). arXiv:2504.07245
        (code: github.com/korhansevinc/LatentG-Loss @ a2895c5)

    Inputs:
        ``outputs.logits`` ``(B, C)``, ``outputs.latents`` ``(B, Z)``,
        ``outputs.reconstruction`` and ``outputs.inputs`` ``(B, D)``,
        ``outputs.teacher_latents`` ``(B, Z)`` and ``outputs.teacher_logits`` ``(B, C)``
        (teacher rows looked up by document, not by batch position); class indices.

    Relations:
        What changed from the reference code, and why:

        1. **The guidance term had no gradient.** The reference computed ``G`` in numpy from
           detached tensors, so it only rescaled the CE gradient by a per-batch constant and
           never moved the latent. Here ``G`` is computed in torch and back-propagates into
           the student's latent and logits: ``dL = (1 + rG) dCE + r CE dG + gamma dMSE``.
        2. **The distance term was identically zero.** The reference z-scored the per-example
           logit distances inside the batch and summed them; a sum of z-scores is 0 (and NaN for
           a batch of one). Here the term is the plain mean distance.

        Also changed: ``G`` is a mean over the batch, not a sum (its scale no longer depends on
        the batch size); the reference's mixture *density* of one component chosen by the
        batch's first example (which exceeds 1 for tight covariances and makes ``1 - p``
        negative) is replaced by a likelihood in ``(0, 1]`` around each example's own teacher
        descriptor, so the loss needs no fitted mixture; the clamp of the loss to ``[0, 3]``
        (which zeroed every gradient once the loss passed 3) is dropped. At epoch 0 the loss
        is ``CE + gamma * MSE`` as in the reference. ``tversky`` and ``dice`` are the repo's
        other losses.

    Example:
        ``LatentGuidanceLoss().compute(logits, labels, latents, reconstruction, inputs,
        teacher_latents, teacher_logits)`` returns ``{"ce", "guidance", "reconstruction"}``.
    """

    name = "latent_guidance"
    display_name = "LatentG"
    requires = frozenset(
        {"logits", "latents", "reconstruction", "inputs", "teacher_latents", "teacher_logits"}
    )
    targets = "index"
    single_label_only = True
    sub_terms = ("ce", "guidance", "reconstruction")

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float = 75.0,
        sigma: float = 1.0,
        ramp: bool = True,
    ) -> None:
        super().__init__()
        check(alpha >= 0, "alpha >= 0", alpha=alpha)
        check(beta >= 0, "beta >= 0", beta=beta)
        check(gamma >= 0, "gamma >= 0", gamma=gamma)
        check(sigma > 0, "sigma > 0", sigma=sigma)
        self.alpha, self.beta, self.gamma, self.sigma = alpha, beta, gamma, sigma
        self.ramp = bool(ramp)
        self.progress = 0.0

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.progress = epoch / max(num_epochs, 1)

    def compute(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        latents: torch.Tensor,
        reconstruction: torch.Tensor,
        inputs: torch.Tensor,
        teacher_latents: torch.Tensor,
        teacher_logits: torch.Tensor,
        *,
        progress: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """The three parts; their sum is the loss. ``progress`` overrides ``e / E``."""
        r = (self.progress if progress is None else progress) if self.ramp else 1.0
        ce = F.cross_entropy(logits, labels)
        latent, distance = guidance_terms(
            latents, logits, teacher_latents, teacher_logits, sigma=self.sigma
        )
        g = self.alpha * latent + self.beta * distance
        mse = F.mse_loss(reconstruction, inputs.to(reconstruction.dtype))
        return {"ce": ce, "guidance": r * ce * g, "reconstruction": self.gamma * mse}

    def forward(self, outputs: ModelOutputs, batch: Batch) -> dict[str, torch.Tensor]:
        if batch.y is None:
            raise ValueError("loss 'latent_guidance' needs single-label targets")
        return self.compute(
            outputs.logits,
            batch.y,
            outputs.get("latents"),
            outputs.get("reconstruction"),
            outputs.get("inputs"),
            outputs.get("teacher_latents"),
            outputs.get("teacher_logits"),
        )
