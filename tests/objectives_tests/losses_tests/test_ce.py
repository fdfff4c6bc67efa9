"""Softmax cross-entropy ("ce"), against an explicit loop."""

from __future__ import annotations

import math
import re

import pytest
import torch

from losstune.objectives.losses import LOSSES, Batch, CrossEntropyLoss
from losstune.objectives.models.outputs import ModelOutputs


def loop_ce(logits: list[list[float]], labels: list[int], eps: float) -> float:
    total = 0.0
    for row, y in zip(logits, labels, strict=True):
        c = len(row)
        top = max(row)
        log_z = top + math.log(sum(math.exp(v - top) for v in row))
        for k, v in enumerate(row):
            target = (1 - eps) * (k == y) + eps / c
            total -= target * (v - log_z)
    return total / len(logits)


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("b", [1, 5])
def test_ce_matches_loop(eps: float, b: int) -> None:
    g = torch.Generator().manual_seed(b)
    logits = torch.randn(b, 4, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1, 3, 0, 1, 1][:b])  # class 2 never appears
    value = CrossEntropyLoss(label_smoothing=eps).compute(logits, labels)
    assert float(value.detach()) == pytest.approx(loop_ce(logits.tolist(), labels.tolist(), eps),
                                                  abs=1e-9)
    (grad,) = torch.autograd.grad(value, logits)
    assert torch.isfinite(grad).all()


def test_ce_forward_and_errors() -> None:
    assert LOSSES["ce"] is CrossEntropyLoss
    logits = torch.zeros(2, 3)
    batch = Batch(index=torch.arange(2), y=torch.tensor([0, 2]), y_multi=torch.zeros(2, 3))
    assert float(CrossEntropyLoss()(ModelOutputs(logits=logits), batch)) == pytest.approx(
        math.log(3))
    multi = Batch(index=torch.arange(2), y=None, y_multi=torch.ones(2, 3))
    with pytest.raises(ValueError, match="needs single-label targets"):
        CrossEntropyLoss()(ModelOutputs(logits=logits), multi)
    with pytest.raises(ValueError, match=re.escape("`0 <= label_smoothing < 1` must hold")):
        CrossEntropyLoss(label_smoothing=1.0)
