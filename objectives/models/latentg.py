"""LatentG's DualTextCNN (Sevinç 2025): encoder -> latent ``z`` -> classifier and decoder.

Input choice. The upstream model reads one vector per text, the mean of its word2vec-300 word
vectors, as a 1-channel signal, and its decoder reconstructs that vector. We keep that design and
read the pooled ``embeddings`` input: with ``encoder: glove`` it is the mean GloVe-50d vector, the
direct offline analogue (any pooled encoder works: ``minilm`` gives 384-d). Reasons: the
reconstruction target (``inputs``) stays the fixed-size vector the paper reconstructs, so the
teacher is the same autoencoder; the latents of teacher and student describe the same input;
and it costs milliseconds per epoch on a CPU, which the teacher-once-per-config pipeline needs.
Token-level models exist separately (``textcnn``, ``birnn``).

Registered heads:

* ``dual_textcnn``: the autoencoder/teacher architecture on its own (outputs ``latents``,
  ``reconstruction``, ``inputs``); a study can train it with any loss.
* ``latentg_student``: the same architecture plus a teacher. The teacher (a ``dual_textcnn`` of
  width ``teacher_width`` and the student's ``latent_dim``) is trained once per (dataset, encoder,
  teacher settings) with ``CE + teacher_recon_weight * MSE`` and selected on the validation
  split; its latents and logits for every document are cached on disk by row
  (:mod:`losstune.objectives.models.teacher`) and reach the student's outputs as
  ``teacher_latents`` and
  ``teacher_logits``, sliced by the batch's row numbers (never by batch position).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from losstune.objectives.models.dual_textcnn import MIN_IN_DIM, DualTextCNN
from losstune.objectives.models.heads import BaseHead
from losstune.objectives.models.teacher import TeacherSettings, teacher_inputs
from losstune.objectives.types import ModelOutputs

#: The teacher's settings when a study sets none (the student's ``teacher_*`` defaults).
_TEACHER = TeacherSettings()

class DualTextCNNHead(BaseHead):
    """LatentG's DualTextCNN as a head on a pooled text vector (the teacher architecture).

    Outputs: ``logits``; ``embeddings`` and ``latents`` are the latent ``z``
    (``latent_dim`` wide); ``reconstruction`` is the decoder output ``x_hat`` and ``inputs`` the
    input vector ``x`` it reconstructs.

    Args:
        latent_dim: width of ``z`` (upstream 32; the autoencoder experiment used 16).
        width: channels of the first conv block (upstream 64; then 2x and 4x).

    Inputs: ``embeddings`` of at least 36 dims (``encoder: glove`` gives the mean GloVe vector,
    the paper's input with GloVe-50d standing in for word2vec-300).
    """

    name = "dual_textcnn"
    input = "embeddings"
    provides = frozenset({"logits", "embeddings", "latents", "reconstruction", "inputs"})

    def __init__(self, *, in_dim: int, num_classes: int, latent_dim: int = 32,
                 width: int = 64) -> None:
        super().__init__()
        self.latent_dim, self.width = latent_dim, width
        self.net = DualTextCNN(in_dim=in_dim, num_classes=num_classes, latent_dim=latent_dim,
                               width=width)
        self.embedding_dim = latent_dim

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutputs:
        x = inputs["embeddings"]
        logits, reconstruction, z = self.net(x)
        return ModelOutputs(
            logits=logits,
            embeddings=z,
            extras={"latents": z, "reconstruction": reconstruction, "inputs": x},
        )


class LatentGStudentHead(DualTextCNNHead):
    """The LatentG student: a fresh DualTextCNN whose outputs also carry its cached teacher's
    latents and logits for the same documents (``teacher_latents`` ``(B, latent_dim)``,
    ``teacher_logits`` ``(B, C)``), for the ``latent_guidance`` loss.

    Args:
        latent_dim, width: the student's architecture (``latent_dim`` is shared with the
            teacher, so that latents can be compared).
        teacher_width: the teacher's first-block channels (upstream 64).
        teacher_epochs: teacher training epochs (upstream 500 on 85k texts; 30 by default here,
            where the epoch with the lowest validation loss is kept).
        teacher_lr: teacher learning rate (upstream SGD 0.01).
        teacher_optimizer: ``sgd`` (upstream, with momentum 0) or ``adam``.
        teacher_batch_size: upstream 64.
        teacher_recon_weight: weight of the teacher's reconstruction MSE (upstream 90).
        teacher_seed: upstream 42; the teacher never follows the trial seed, so every trial
            of a study shares one teacher.

    Changing any ``teacher_*`` knob, ``latent_dim``, the data or the encoder trains (and caches)
    another teacher; the student's own knobs and the trial seed reuse the cached one.
    """

    name = "latentg_student"
    provides = DualTextCNNHead.provides | {"teacher_latents", "teacher_logits"}

    def __init__(
        self,
        *,
        in_dim: int,
        num_classes: int,
        latent_dim: int = _TEACHER.latent_dim,
        width: int = 64,
        teacher_width: int = _TEACHER.width,
        teacher_epochs: int = _TEACHER.epochs,
        teacher_lr: float = _TEACHER.lr,
        teacher_optimizer: Literal["sgd", "adam"] = _TEACHER.optimizer,
        teacher_batch_size: int = _TEACHER.batch_size,
        teacher_recon_weight: float = _TEACHER.recon_weight,
        teacher_seed: int = _TEACHER.seed,
    ) -> None:
        super().__init__(in_dim=in_dim, num_classes=num_classes, latent_dim=latent_dim,
                         width=width)
        self.teacher = TeacherSettings(
            latent_dim=latent_dim, width=teacher_width, epochs=teacher_epochs, lr=teacher_lr,
            optimizer=teacher_optimizer, batch_size=teacher_batch_size,
            recon_weight=teacher_recon_weight, seed=teacher_seed,
        )

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutputs:
        out = super().forward(inputs)
        for name in ("teacher_latents", "teacher_logits"):
            if name in inputs:
                out.extras[name] = inputs[name]
        return out

    @classmethod
    def extra_inputs(cls, config: Any, data: Any) -> dict[str, dict[str, torch.Tensor]]:
        return teacher_inputs(config, data)


__all__ = ["MIN_IN_DIM", "DualTextCNN", "DualTextCNNHead", "LatentGStudentHead"]
