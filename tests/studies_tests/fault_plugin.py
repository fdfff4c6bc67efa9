"""A test plugin loss for fault tests across processes: listed under ``plugins:`` in a study file,
it is imported by the driver and by every worker (local, Ray, Ray Tune), so faults are injected
through the trial's own parameters, without monkeypatching.

``loss.probe.fault`` chooses what a trial does: ``"ok"`` trains normally, ``"nan"`` makes the loss
NaN, ``"raise"`` raises; ``loss.probe.delay`` sleeps that many seconds per training batch, so a
trial lasts long enough to be killed in the middle.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from losstune.objectives.losses import LOSSES, BaseLoss, Batch, register_loss
from losstune.objectives.models.outputs import ModelOutputs
from losstune.search_spaces import CategoricalDist, FloatDist, register_loss_space


class ProbeLoss(BaseLoss):
    """Softmax cross-entropy that can be told to fail or to be slow (a test fixture).

    ``L = CE(z, y)`` for ``fault == "ok"``; ``NaN`` for ``"nan"``; raises for ``"raise"``.

    Args:
        fault: ``"ok"``, ``"nan"`` or ``"raise"``.
        delay: seconds to sleep per batch (``>= 0``).

    References:
        none (a test fixture).
    """

    name = "probe"
    display_name = "Probe"
    targets = "index"
    single_label_only = True

    def __init__(self, *, fault: str = "ok", delay: float = 0.0) -> None:
        super().__init__()
        if fault not in ("ok", "nan", "raise"):
            raise ValueError(f"`fault` must be ok, nan or raise, but got {fault!r}")
        if delay < 0:
            raise ValueError(f"`delay >= 0` must hold, but got delay={delay}")
        self.fault = fault
        self.delay = delay

    def compute(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.delay:
            time.sleep(self.delay)
        if self.fault == "raise":
            raise RuntimeError("probe loss raised on purpose")
        loss = F.cross_entropy(logits, labels)
        return loss * float("nan") if self.fault == "nan" else loss

    def forward(self, outputs: ModelOutputs, batch: Batch) -> torch.Tensor:
        if batch.y is None:
            raise ValueError("loss 'probe' needs single-label targets")
        return self.compute(outputs.logits, batch.y)


if LOSSES.get("probe") is not ProbeLoss:
    register_loss(ProbeLoss, overwrite=True)
register_loss_space("probe", {"fault": CategoricalDist(("ok", "nan", "raise")),
                              "delay": FloatDist(0.0, 1.0)})
