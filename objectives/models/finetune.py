"""End-to-end fine-tuning of all-MiniLM-L6-v2 under any head (``encoder.fine_tune: true``).

The trainer feeds the cached word-piece ids and mask of each batch (``token_ids`` from the
``minilm`` encoder, tokenised once per dataset and cached); :class:`FineTunedEncoder` runs the
transformer on them, mean-pools over the mask and L2-normalises (exactly the frozen encoder's
pooling, so the head sees the same kind of vector as with cached embeddings), then calls the
head. Heads that read ``token_states`` get the transformer's token states and mask instead.
The transformer's parameters form their own optimizer group with ``train.encoder_lr``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from losstune.objectives.models.heads import BaseHead
from losstune.objectives.types import ModelOutputs

#: Texts per transformer call when scoring a whole split without gradients.
EVAL_CHUNK = 128


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens, then L2 normalisation (sentence-transformers' Pooling +
    Normalize for all-MiniLM-L6-v2)."""
    m = mask.unsqueeze(-1).to(states.dtype)
    pooled = (states * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    return nn.functional.normalize(pooled, p=2, dim=1)


class FineTunedEncoder(nn.Module):
    """A trainable transformer in front of a head; behaves like a head for the trainer.

    Args:
        head: the head, built with ``in_dim`` = the transformer width (384).
        transformer: a ``transformers`` encoder; by default a fresh copy of the bundled MiniLM.
    """

    def __init__(self, head: BaseHead, transformer: Any | None = None) -> None:
        super().__init__()
        if transformer is None:
            from losstune.objectives.encoders.minilm import load_trainable_minilm

            transformer = load_trainable_minilm()
        self.transformer = transformer
        self.head = head
        self.provides = head.provides
        self.embedding_dim = getattr(head, "embedding_dim", None)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.transformer.parameters() if p.requires_grad]

    def _states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled() or len(ids) <= EVAL_CHUNK:
            return self.transformer(input_ids=ids, attention_mask=mask).last_hidden_state
        parts = [
            self.transformer(input_ids=ids[i : i + EVAL_CHUNK],
                             attention_mask=mask[i : i + EVAL_CHUNK]).last_hidden_state
            for i in range(0, len(ids), EVAL_CHUNK)
        ]
        return torch.cat(parts)

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutputs:
        ids, mask = inputs["token_ids"], inputs["token_mask"]
        length = max(int(mask.sum(dim=1).max().item()), 1)  # drop shared padding columns
        ids, mask = ids[:, :length].long(), mask[:, :length].long()
        states = self._states(ids, mask)
        if self.head.input == "token_states":
            head_inputs = {"token_states": states, "token_mask": mask}
        else:
            head_inputs = {"embeddings": mean_pool(states, mask)}
        for name, value in inputs.items():  # per-trial extras (e.g. a teacher's outputs)
            if name not in ("token_ids", "token_mask"):
                head_inputs[name] = value
        return self.head(head_inputs)
