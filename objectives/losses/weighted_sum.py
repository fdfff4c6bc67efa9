"""A weighted sum of named loss terms, each term's value kept for logging."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from losstune.objectives.losses.base import BaseLoss, Batch, check
from losstune.objectives.types import ModelOutputs


def term_names(loss: BaseLoss) -> list[str]:
    """``["<name>"]`` for a one-term loss, ``["<name>.<sub>", ...]`` for a multi-term loss."""
    if loss.sub_terms:
        return [f"{loss.name}.{sub}" for sub in loss.sub_terms]
    return [loss.name]


class WeightedSum(nn.Module):
    """``L = sum_t w_t L_t`` over the terms of several losses.

    Each loss contributes one term named after it (``ce``, ``triplet``) or, for a multi-term
    loss, one term per sub-term (``space.inter``, ``space.intra``). ``weights`` maps term names
    to non-negative weights (missing terms weigh 1). A term with weight 0 is still computed and
    logged but adds nothing and takes no gradient.
    """

    def __init__(self, losses: Sequence[BaseLoss], weights: Mapping[str, float]) -> None:
        super().__init__()
        names = [loss.name for loss in losses]
        if len(set(names)) != len(names):
            raise ValueError(f"each loss may appear once in a weighted sum, but got {names}")
        self.losses = nn.ModuleList(losses)
        self.names = [n for loss in losses for n in term_names(loss)]
        unknown = sorted(set(weights) - set(self.names))
        if unknown:
            raise ValueError(f"weights for unknown term(s) {unknown}; terms are {self.names}")
        for name, w in weights.items():
            check(w >= 0, f"weight.{name} >= 0", **{"weight": w})
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.names}

    def forward(
        self, outputs: ModelOutputs, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms: dict[str, torch.Tensor] = {}
        for loss in self.losses:
            value = loss(outputs, batch)
            if isinstance(value, Mapping):
                missing = set(loss.sub_terms) - set(value)
                if missing:
                    raise ValueError(
                        f"loss {loss.name!r} did not return term(s) {sorted(missing)}"
                    )
                for sub in loss.sub_terms:
                    terms[f"{loss.name}.{sub}"] = value[sub]
            else:
                terms[loss.name] = value
        return self._total(terms), terms

    def _total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """``sum_t w_t L_t`` from a float32 zero, without the operations that change nothing
        (adding that zero, weights of 1) for float32 terms: the same value and gradients, bit
        for bit, with fewer autograd nodes per batch."""
        device = next(iter(terms.values())).device
        parts = [(self.weights[n], t) for n, t in terms.items() if self.weights[n] != 0.0]
        if not parts or any(t.dtype != torch.float32 for _, t in parts):
            return sum((w * t for w, t in parts), start=torch.zeros((), device=device))
        total: torch.Tensor | None = None
        for w, t in parts:
            part = t if w == 1.0 else w * t
            total = part if total is None else total + part
        assert total is not None
        return total

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        for loss in self.losses:
            loss.on_epoch_start(epoch, num_epochs)
