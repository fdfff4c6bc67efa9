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
from torch import nn

from losstune.objectives._checks import check
from losstune.objectives.models.heads import BaseHead
from losstune.objectives.models.outputs import ModelOutputs

#: Smallest input width the three unpadded conv blocks can read (36 -> 16 -> 6 -> 1).
MIN_IN_DIM = 36


class _BatchNorm1d(nn.BatchNorm1d):
    """BatchNorm that uses its running statistics for a training batch of one example (a
    ragged last batch), where batch statistics do not exist."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return nn.functional.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                self.eps,
            )
        return super().forward(x)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, 3), _BatchNorm1d(c_out), nn.ReLU(),
        nn.Conv1d(c_out, c_out, 3), _BatchNorm1d(c_out), nn.ReLU(),
        nn.MaxPool1d(2),
    )


class DualTextCNN(nn.Module):
    """Upstream's ``DualTextCNN`` with a configurable width.

    * encoder: 3 blocks of [Conv1d(k=3, no padding) -> BN -> ReLU] x 2 -> MaxPool(2), channels
      ``w, 2w, 4w`` (upstream 64, 128, 256), then global average pooling -> ``4w``;
    * latent: Linear(4w -> latent_dim), no activation (``z``);
    * classifier: ``latent_dim -> 128 -> 64 -> C`` with BN + ReLU after the hidden layers;
    * decoder: ``latent_dim -> 64 -> 128 -> 256 -> in_dim`` with ReLU between layers (none on the
      output, which reconstructs a signed vector).
    """

    def __init__(self, *, in_dim: int, num_classes: int, latent_dim: int = 32,
                 width: int = 64) -> None:
        super().__init__()
        check(in_dim >= MIN_IN_DIM, f"in_dim >= {MIN_IN_DIM}", in_dim=in_dim)
        check(latent_dim >= 1, "latent_dim >= 1", latent_dim=latent_dim)
        check(width >= 1, "width >= 1", width=width)
        self.encoder = nn.Sequential(
            _block(1, width), _block(width, 2 * width), _block(2 * width, 4 * width),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        )
        self.to_latent = nn.Linear(4 * width, latent_dim)
        self.classifier = nn.Sequential(
            nn.Linear(latent_dim, 128), _BatchNorm1d(128), nn.ReLU(),
            nn.Linear(128, 64), _BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, num_classes),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 64), nn.ReLU(),
            nn.Linear(64, 128), nn.ReLU(),
            nn.Linear(128, 256), nn.ReLU(),
            nn.Linear(256, in_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits, reconstruction, latent)`` as upstream's forward returns them."""
        z = self.to_latent(self.encoder(x.unsqueeze(1)))
        return self.classifier(z), self.decoder(z), z


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
        latent_dim: int = 32,
        width: int = 64,
        teacher_width: int = 64,
        teacher_epochs: int = 30,
        teacher_lr: float = 0.01,
        teacher_optimizer: Literal["sgd", "adam"] = "sgd",
        teacher_batch_size: int = 64,
        teacher_recon_weight: float = 90.0,
        teacher_seed: int = 42,
    ) -> None:
        super().__init__(in_dim=in_dim, num_classes=num_classes, latent_dim=latent_dim,
                         width=width)
        self.teacher = teacher_settings(
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
        from losstune.objectives.models.teacher import teacher_inputs

        return teacher_inputs(config, data)


def teacher_settings(**values: Any) -> Any:
    from losstune.objectives.models.teacher import TeacherSettings

    return TeacherSettings(**values)
