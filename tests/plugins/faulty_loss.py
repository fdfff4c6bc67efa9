"""A test plugin loss whose knob makes a trial succeed, produce NaN or raise.

Listed under ``plugins:`` in test study files, so that failures can be injected into real trials
in any process (local or Ray workers) without monkeypatching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from losstune.objectives.losses import BaseLoss, Batch, register_loss
from losstune.objectives.models.outputs import ModelOutputs
from losstune.search_spaces import CategoricalDist, register_loss_space

MODES = ("ok", "nan", "raise", "nan_last_epoch", "inf_eval")


class FaultyLoss(BaseLoss):
    """Softmax cross-entropy that can be told to fail.

    ``L = CE(z, y)`` when ``mode == "ok"``; NaN when ``mode == "nan"``; raises when
    ``mode == "raise"``; NaN in the last training epoch only when ``mode == "nan_last_epoch"``;
    infinite outside training (the validation ``loss`` metric) when ``mode == "inf_eval"``.

    Args:
        mode: "ok", "nan", "raise", "nan_last_epoch" or "inf_eval".

    References:
        none (a test fixture).

    Inputs:
        ``outputs.logits``; class indices.
    """

    name = "faulty"
    display_name = "Faulty"
    targets = "index"
    single_label_only = True

    def __init__(self, *, mode: str = "ok") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, but got {mode!r}")
        self.mode = mode

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.mode == "raise":
            raise RuntimeError("faulty loss raised on purpose")
        loss = F.cross_entropy(logits, labels)
        return loss * float("nan") if self.mode == "nan" else loss

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        assert batch.y is not None
        loss = self.compute(outputs.logits, batch.y)
        training = torch.is_grad_enabled()  # evaluation runs under no_grad
        if self.mode == "nan_last_epoch" and training and batch.epoch == batch.num_epochs - 1:
            return loss * float("nan")
        if self.mode == "inf_eval" and not training:
            return loss * float("inf")
        return loss


register_loss(FaultyLoss, overwrite=True)
# the searched modes; a study asks for the others with a `space:` override
register_loss_space("faulty", {"mode": CategoricalDist(("ok", "nan", "raise"))})
