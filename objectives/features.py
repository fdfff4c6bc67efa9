"""Cached encoder outputs for a dataset split: encode once, reuse in every trial.

Rows are reused across splits of the same dataset and encoder (``cached_rows``): another
holdout (``split_seed``) or a ``limit`` subset is assembled from the cached encodings of the
documents it holds, and only documents never encoded before are encoded. A row encoded in
another batch can differ from a fresh encoding of the same split by float rounding only
(padding inside a batch changes the summation order), never more.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Literal

import numpy as np

from losstune.objectives.cache import cached_rows, entry_dir, register_rows, row_digests
from losstune.objectives.config import EncoderConfig
from losstune.objectives.data import TextDataset, load_dataset
from losstune.objectives.data.base import SPLITS
from losstune.objectives.devices import device_kind
from losstune.objectives.encoders import build_encoder

logger = logging.getLogger(__name__)

__all__ = ["device_kind", "encoder_outputs", "feature_key", "set_encoding_progress",
           "token_context"]

#: ``hook(description, total)`` -> a context manager giving ``advance(rows)``: how a command
#: line shows encoding progress (a rich bar lives on the studies side; this package never
#: imports rich). None: no display.
EncodingProgress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]
_encoding_progress: EncodingProgress | None = None


def set_encoding_progress(hook: EncodingProgress | None) -> EncodingProgress | None:
    """Install ``hook`` for the encodings of this process; returns the previous one."""
    global _encoding_progress
    previous, _encoding_progress = _encoding_progress, hook
    return previous


@contextlib.contextmanager
def _encoding_display(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """``advance(rows)`` for one encoding: the installed hook's, completed on success."""
    hook = _encoding_progress
    if hook is None:
        yield lambda _rows: None
        return
    done = 0
    with hook(description, total) as advance:
        def step(rows: int) -> None:
            nonlocal done
            rows = min(rows, total - done)
            if rows > 0:
                done += rows
                advance(rows)

        yield step
        step(total - done)  # encoders that report no batches complete at the end


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
    family = row_family(dataset.name, encoder, enc.identity(), device)
    texts = dataset.split(split).texts

    encoded: list[int] = []

    def compute(positions: np.ndarray) -> dict[str, np.ndarray]:
        chosen = [texts[i] for i in positions]
        encoded.append(len(chosen))
        logger.warning(
            "encoding %d texts of %s/%s with %s (max_length %d); cached for later runs",
            len(chosen), dataset.name, split, encoder.name, encoder.max_length,
        )
        report_truncated(enc, chosen, dataset.name, split)
        with _encoding_display(f"encoding {dataset.name}/{split} ({encoder.name})",
                               len(chosen)) as advance:
            enc.on_rows = advance  # encoders that batch report each batch
            try:
                return _encode(chosen)
            finally:
                enc.on_rows = None

    def _encode(chosen: list[str]) -> dict[str, np.ndarray]:
        if kind == "embeddings":
            return {"embeddings": enc.encode(chosen, batch_size=encoder.batch_size)}
        if kind == "token_ids":
            ids, mask = enc.encode_ids(chosen, batch_size=encoder.batch_size)
            return {"token_ids": ids, "token_mask": mask}
        states, mask = enc.encode_tokens(chosen, batch_size=encoder.batch_size)
        return {"token_states": states, "token_mask": mask}

    if not (entry_dir(kind, key) / "meta.json").exists():
        _adopt_whole_dataset(dataset, encoder, enc.identity(), kind, device, family)
    out = cached_rows(kind, key, family, row_digests(texts), compute)
    if encoded:
        logger.info("feature cache miss: %s/%s with %s (%s): encoded %d of %d rows, stored in %s",
                    dataset.name, split, encoder.name, kind, sum(encoded), len(texts),
                    entry_dir(kind, key).parent)
    else:
        logger.info("feature cache hit: %s/%s with %s (%s): %d rows from %s", dataset.name,
                    split, encoder.name, kind, len(texts), entry_dir(kind, key).parent)
    return out


def report_truncated(enc: object, texts: list[str], dataset: str, split: str) -> int | None:
    """Log (once per encoding, i.e. once per dataset split and encoder) how many ``texts``
    ``max_length`` cuts. Returns the count (None when the encoder cannot tell)."""
    try:
        cut = enc.count_truncated(texts)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a count must never stop an encoding
        logger.debug("could not count truncated texts", exc_info=True)
        return None
    if cut:
        name = getattr(enc, "name", "the encoder")
        max_length = getattr(enc, "max_length", "?")
        logger.warning(
            "%s/%s: %d of %d texts are longer than max_length %s (%s tokens) and are cut to "
            "their first %s tokens; raise encoder.max_length to keep more of them",
            dataset, split, cut, len(texts), max_length, name, max_length,
        )
    return cut


def row_family(
    dataset: str, encoder: EncoderConfig, identity: dict[str, object], device: str = "cpu"
) -> dict[str, object]:
    """What two cached rows must share to be interchangeable: the feature key without the
    split and its text digest (dataset, encoder identity, max length, device kind)."""
    key: dict[str, object] = {"dataset": dataset, **identity, "max_length": encoder.max_length}
    kind = device_kind(device)
    if kind != "cpu":
        key["device"] = kind
    return key


def _adopt_whole_dataset(
    dataset: TextDataset, encoder: EncoderConfig, identity: dict[str, object], kind: str,
    device: str, family: dict[str, object],
) -> None:
    """A subset or another holdout: list the cached splits of the whole dataset (same loader
    options, no ``limit``, default ``split_seed``) for row reuse, including entries written
    before rows were indexed."""
    options = dataset.source_options
    if not {"limit", "split_seed"} & set(options):
        return
    whole_options = {k: v for k, v in options.items() if k not in ("limit", "split_seed")}
    try:
        whole = load_dataset(dataset.name, whole_options)
    except Exception:  # noqa: BLE001 - reuse is an optimisation; encoding still works
        logger.debug("could not load the whole dataset for row reuse", exc_info=True)
        return
    for split in SPLITS:
        key = feature_key(whole, split, encoder, identity, device)
        part = whole.split(split)
        register_rows(kind, key, family, lambda part=part: row_digests(part.texts))


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
