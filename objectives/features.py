"""Cached encoder outputs for a dataset split: encode once, reuse in every trial."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from losstune.objectives.cache import cached_arrays
from losstune.objectives.config import EncoderConfig
from losstune.objectives.data import TextDataset
from losstune.objectives.devices import device_kind
from losstune.objectives.encoders import build_encoder

logger = logging.getLogger(__name__)

__all__ = ["device_kind", "encoder_outputs", "feature_key", "token_context"]


def feature_key(
    dataset: TextDataset, split: str, encoder: EncoderConfig, identity: dict[str, object],
    device: str = "cpu",
) -> dict[str, object]:
    """The cache key: dataset, split, text digest, encoder identity (incl. weight-file hash),
    and the device kind when it is not the CPU (GPU kernels give slightly different numbers, and
    a CPU replay must reproduce a CPU study exactly)."""
    part = dataset.split(split)
    key: dict[str, object] = {
        "dataset": dataset.name,
        "split": split,
        "n": len(part),
        "texts": part.digest(),
        **identity,
        "max_length": encoder.max_length,
    }
    kind = device_kind(device)
    if kind != "cpu":
        key["device"] = kind
    return key


def encoder_outputs(
    dataset: TextDataset,
    split: str,
    encoder: EncoderConfig,
    *,
    kind: Literal["embeddings", "token_states", "token_ids"] = "embeddings",
    device: str = "cpu",
) -> dict[str, np.ndarray]:
    """``{"embeddings": (n, d)}``, ``{"token_states": (n, L, d) fp16, "token_mask": (n, L)}``
    or ``{"token_ids": (n, L) int32, "token_mask": (n, L)}`` (the encoder's tokenizer)."""
    enc = build_encoder(
        encoder.name, max_length=encoder.max_length, device=device, **encoder.options
    )
    if kind not in enc.provides:
        raise ValueError(
            f"encoder {encoder.name!r} cannot produce {kind!r}; it provides {sorted(enc.provides)}"
        )
    key = feature_key(dataset, split, encoder, enc.identity(), device)
    texts = dataset.split(split).texts

    def compute() -> dict[str, np.ndarray]:
        logger.warning(
            "encoding %d texts of %s/%s with %s (max_length %d); cached for later runs",
            len(texts), dataset.name, split, encoder.name, encoder.max_length,
        )
        if kind == "embeddings":
            return {"embeddings": enc.encode(texts, batch_size=encoder.batch_size)}
        if kind == "token_ids":
            ids, mask = enc.encode_ids(texts, batch_size=encoder.batch_size)
            return {"token_ids": ids, "token_mask": mask}
        states, mask = enc.encode_tokens(texts, batch_size=encoder.batch_size)
        return {"token_states": states, "token_mask": mask}

    return cached_arrays(kind, key, compute)


def token_context(encoder: EncoderConfig) -> dict[str, object]:
    """What a model reading ``token_ids`` needs from the encoder: ``token_dim`` (its vector
    width), ``vocab_size`` (rows of the id space) and ``token_vectors`` (pretrained rows or
    None)."""
    enc = build_encoder(encoder.name, max_length=encoder.max_length, **encoder.options)
    if "token_ids" not in enc.provides:
        raise ValueError(
            f"encoder {encoder.name!r} cannot produce 'token_ids'; it provides "
            f"{sorted(enc.provides)}"
        )
    return {"token_dim": enc.dim, "vocab_size": enc.num_ids, "token_vectors": enc.token_vectors()}
