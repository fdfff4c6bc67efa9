"""Trainable heads on cached sentence embeddings."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import nn

from losstune.objectives._checks import check
from losstune.objectives.types import ModelOutputs


class BaseHead(nn.Module):
    """A trainable model on top of cached encoder outputs.

    Class attributes:
        name: registry name (``model.head`` in study files).
        input: which cached encoder output it reads: ``"embeddings"`` (pooled, ``(B, D)``),
            ``"token_states"`` (``(B, L, D)`` plus a mask) or ``"token_ids"`` (``(B, L)`` ids of
            the encoder's tokenizer plus a mask; the model embeds them itself).
        provides: the :class:`ModelOutputs` fields it fills.
        cpu_threads_pay: whether its trials train faster on several torch CPU threads than on
            one (the default thread count follows the cores only then). False by default: most
            heads multiply small tensors per batch, and waking a second thread for each costs
            more than it saves.

    Constructors take the context arguments ``in_dim`` and ``num_classes`` plus typed
    keyword-only knobs (searchable as ``model.<knob>``).
    """

    name: ClassVar[str] = ""
    input: ClassVar[Literal["embeddings", "token_states", "token_ids"]] = "embeddings"
    provides: ClassVar[frozenset[str]] = frozenset({"logits", "embeddings"})
    cpu_threads_pay: ClassVar[bool] = False

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutputs:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def extra_inputs(cls, config: Any, data: Any) -> dict[str, dict[str, torch.Tensor]]:
        """Per-trial inputs beside the encoder outputs, ``{split: {name: (n, ...) tensor}}``,
        row-aligned with the split (row ``i`` is document ``i``), so that batches slice them by
        the same row numbers as everything else. Default: none. The LatentG student returns
        its cached teacher's latents and logits here."""
        return {}


class LinearHead(BaseHead):
    """A linear classifier ``z = W x + b`` with optional input dropout; embeddings are ``x``."""

    name = "linear"

    def __init__(self, *, in_dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        check(0 <= dropout < 1, "0 <= dropout < 1", dropout=dropout)
        self.dropout = dropout
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(in_dim, num_classes)
        self.embedding_dim = in_dim

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutputs:
        x = inputs["embeddings"]
        # dropout with p = 0 is the identity (and draws no random numbers): skip the call
        return ModelOutputs(logits=self.classifier(self.drop(x) if self.dropout else x),
                            embeddings=x)


class MLPHead(BaseHead):
    """One hidden layer: ``z = W2 dropout(act(W1 x))``; embeddings are the hidden activations."""

    name = "mlp"

    def __init__(
        self,
        *,
        in_dim: int,
        num_classes: int,
        hidden: int = 256,
        dropout: float = 0.1,
        activation: Literal["relu", "gelu", "tanh"] = "relu",
    ) -> None:
        super().__init__()
        check(hidden >= 1, "hidden >= 1", hidden=hidden)
        check(0 <= dropout < 1, "0 <= dropout < 1", dropout=dropout)
        acts = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, but got {activation!r}")
        self.hidden, self.dropout, self.activation = hidden, dropout, activation
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), acts[activation]())
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_classes)
        self.embedding_dim = hidden

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutputs:
        h = self.body(inputs["embeddings"])
        return ModelOutputs(logits=self.classifier(self.drop(h) if self.dropout else h),
                            embeddings=h)
