"""Sequence models over token ids: TextCNN (Kim 2014) and a bidirectional LSTM/GRU.

Both read the ``token_ids`` input (``(B, L)`` ids of the encoder's tokenizer, 0 = padding, plus
``token_mask``) and embed the ids themselves, with GloVe-50d vectors (``encoder: glove``) kept
frozen or fine-tuned, or with embeddings learned from scratch. Their outputs are independent of
how much padding a batch carries, so a document scores the same in any batch.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from losstune.objectives._checks import check
from losstune.objectives.models.heads import BaseHead
from losstune.objectives.types import ModelOutputs

EmbeddingMode = Literal["frozen", "tuned", "learned"]


class TokenEmbedding(nn.Module):
    """Id -> vector lookup.

    * ``frozen`` / ``tuned``: rows ``0 .. P-1`` come from ``token_vectors`` (P of them), fixed or
      trained; ids ``>= P`` (hashed out-of-vocabulary buckets) get trainable vectors drawn from
      U(-0.25, 0.25) (Kim 2014's choice for unknown words).
    * ``learned``: every row is trainable, U(-0.25, 0.25), width ``embed_dim``.

    Padding (id 0) is always the zero vector and gets no gradient.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        mode: EmbeddingMode,
        token_vectors: np.ndarray | None = None,
        embed_dim: int = 50,
    ) -> None:
        super().__init__()
        if mode not in ("frozen", "tuned", "learned"):
            raise ValueError(
                f"embedding must be one of ['frozen', 'learned', 'tuned'], but got {mode!r}"
            )
        self.mode = mode
        if mode == "learned":
            self.num_pretrained = 0
            self.pretrained = None
            self.extra = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
            nn.init.uniform_(self.extra.weight, -0.25, 0.25)
            with torch.no_grad():
                self.extra.weight[0].zero_()
            self.dim = embed_dim
            return
        if token_vectors is None:
            raise ValueError(
                f"embedding={mode!r} needs pretrained token vectors, but this encoder has none; "
                "use encoder 'glove' or embedding 'learned'"
            )
        vectors = torch.as_tensor(np.asarray(token_vectors), dtype=torch.float32)
        check(len(vectors) <= vocab_size, "len(token_vectors) <= vocab_size",
              token_vectors=len(vectors), vocab_size=vocab_size)
        self.num_pretrained = len(vectors)
        self.pretrained = nn.Embedding.from_pretrained(
            vectors, freeze=(mode == "frozen"), padding_idx=0
        )
        n_extra = vocab_size - len(vectors)
        self.extra = nn.Embedding(n_extra, vectors.shape[1]) if n_extra else None
        if self.extra is not None:
            nn.init.uniform_(self.extra.weight, -0.25, 0.25)
        self.dim = int(vectors.shape[1])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.pretrained is None:
            assert self.extra is not None
            return self.extra(ids)
        n = self.num_pretrained
        out = self.pretrained(ids.clamp(max=n - 1))
        if self.extra is None:
            return out
        is_extra = (ids >= n).unsqueeze(-1)
        return torch.where(is_extra, self.extra((ids - n).clamp(min=0)), out)


def _trim(ids: torch.Tensor, mask: torch.Tensor, minimum: int = 1) -> tuple[torch.Tensor, ...]:
    """Drop the padding columns every row of the batch shares."""
    length = max(int(mask.sum(dim=1).max().item()) if mask.numel() else 0, minimum)
    if length < ids.shape[1]:
        ids, mask = ids[:, :length], mask[:, :length]
    elif length > ids.shape[1]:  # shorter than the widest kernel: pad
        pad = length - ids.shape[1]
        ids = nn.functional.pad(ids, (0, pad))
        mask = nn.functional.pad(mask, (0, pad))
    return ids, mask


def _kernel_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(k) for k in str(text).split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(k < 1 for k in sizes):
        raise ValueError(
            f"kernel_sizes must be comma-separated positive integers like '3,4,5', "
            f"but got {text!r}"
        )
    return sizes


class TextCNNHead(BaseHead):
    """TextCNN (Kim 2014): embed tokens, 1-d convolutions of several widths with ReLU,
    max-over-time pooling, dropout, linear classifier.

    ``h = concat_k max_t relu(conv_k(E[ids]))_t`` over the windows that start inside the text
    (one window for texts shorter than the kernel); ``logits = W dropout(h) + b``;
    embeddings are ``h`` (``filters * len(kernel_sizes)`` wide).

    Args:
        embedding: ``frozen`` / ``tuned`` GloVe vectors, or ``learned`` from scratch.
        embed_dim: width of learned embeddings (ignored for GloVe: 50).
        filters: feature maps per kernel size.
        kernel_sizes: comma-separated widths, e.g. ``"3,4,5"``.
        dropout: on the pooled features.

    Inputs: ``token_ids`` and ``token_mask`` (encoder ``glove``; ``minilm`` ids with
    ``embedding: learned``).
    """

    name = "textcnn"
    input = "token_ids"
    cpu_threads_pay = True  # convolutions over every token: measured 1.4x faster on 2 threads

    def __init__(
        self,
        *,
        num_classes: int,
        vocab_size: int,
        token_vectors: np.ndarray | None = None,
        embedding: EmbeddingMode = "tuned",
        embed_dim: int = 50,
        filters: int = 100,
        kernel_sizes: str = "3,4,5",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        check(filters >= 1, "filters >= 1", filters=filters)
        check(embed_dim >= 1, "embed_dim >= 1", embed_dim=embed_dim)
        check(0 <= dropout < 1, "0 <= dropout < 1", dropout=dropout)
        self.embedding, self.embed_dim, self.filters = embedding, embed_dim, filters
        self.kernel_sizes, self.dropout = kernel_sizes, dropout
        self.sizes = _kernel_sizes(kernel_sizes)
        self.embed = TokenEmbedding(vocab_size=vocab_size, mode=embedding,
                                    token_vectors=token_vectors, embed_dim=embed_dim)
        self.convs = nn.ModuleList(nn.Conv1d(self.embed.dim, filters, k) for k in self.sizes)
        self.drop = nn.Dropout(dropout)
        self.embedding_dim = filters * len(self.sizes)
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutputs:
        ids, mask = _trim(inputs["token_ids"], inputs["token_mask"], minimum=max(self.sizes))
        lengths = mask.sum(dim=1)
        x = (self.embed(ids) * mask.unsqueeze(-1).to(torch.float32)).transpose(1, 2)
        pooled = []
        for k, conv in zip(self.sizes, self.convs, strict=True):
            h = torch.relu(conv(x))  # (B, F, L - k + 1)
            start = torch.arange(h.shape[-1], device=h.device)
            valid = (start.unsqueeze(0) + k <= lengths.unsqueeze(1)) | (start == 0).unsqueeze(0)
            h = h.masked_fill(~valid.unsqueeze(1), float("-inf"))
            pooled.append(h.max(dim=-1).values)
        features = torch.cat(pooled, dim=1)
        return ModelOutputs(logits=self.classifier(self.drop(features)), embeddings=features)


class BiRNNHead(BaseHead):
    """Bidirectional LSTM or GRU over embedded tokens, pooled over the real tokens.

    ``H = BiRNN(E[ids])`` (packed, so padding never enters the recurrence); ``h`` is the masked
    max or mean of ``H`` over time, or the concatenated final states (``pooling: last``);
    ``logits = W dropout(h) + b``; embeddings are ``h`` (``2 * hidden`` wide).

    Args:
        cell: ``lstm`` or ``gru``.
        hidden: units per direction.
        layers: stacked recurrent layers (dropout between them when > 1).
        pooling: ``max``, ``mean`` or ``last``.
        embedding, embed_dim: as for :class:`TextCNNHead`.
        dropout: on the pooled features (and between layers).

    Inputs: ``token_ids`` and ``token_mask``.
    """

    name = "birnn"
    input = "token_ids"

    def __init__(
        self,
        *,
        num_classes: int,
        vocab_size: int,
        token_vectors: np.ndarray | None = None,
        cell: Literal["lstm", "gru"] = "lstm",
        hidden: int = 128,
        layers: int = 1,
        pooling: Literal["max", "mean", "last"] = "max",
        embedding: EmbeddingMode = "tuned",
        embed_dim: int = 50,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be one of ['gru', 'lstm'], but got {cell!r}")
        if pooling not in ("max", "mean", "last"):
            raise ValueError(
                f"pooling must be one of ['last', 'max', 'mean'], but got {pooling!r}"
            )
        check(hidden >= 1, "hidden >= 1", hidden=hidden)
        check(layers >= 1, "layers >= 1", layers=layers)
        check(0 <= dropout < 1, "0 <= dropout < 1", dropout=dropout)
        self.cell, self.hidden, self.layers, self.pooling = cell, hidden, layers, pooling
        self.embedding, self.embed_dim, self.dropout = embedding, embed_dim, dropout
        self.embed = TokenEmbedding(vocab_size=vocab_size, mode=embedding,
                                    token_vectors=token_vectors, embed_dim=embed_dim)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(self.embed.dim, hidden, num_layers=layers, batch_first=True,
                       bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.embedding_dim = 2 * hidden
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutputs:
        ids, mask = _trim(inputs["token_ids"], inputs["token_mask"])
        lengths = mask.sum(dim=1).clamp(min=1)  # an empty text reads one padding token
        packed = pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, state = self.rnn(packed)
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (layers*2, B, H)
            features = torch.cat([h_n[-2], h_n[-1]], dim=1)
        else:
            seq, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
            valid = (torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
                     < lengths.unsqueeze(1)).unsqueeze(-1)
            if self.pooling == "max":
                features = seq.masked_fill(~valid, float("-inf")).max(dim=1).values
            else:
                features = (seq * valid).sum(dim=1) / lengths.unsqueeze(1).to(seq.dtype)
        return ModelOutputs(logits=self.classifier(self.drop(features)), embeddings=features)
