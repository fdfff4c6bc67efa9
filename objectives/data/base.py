"""Dataset containers shared by every loader."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from losstune.objectives.registry import unknown_name_message


@dataclass(frozen=True)
class Split:
    """The texts and labels of one split.

    ``labels`` is an ``int64`` vector of class indices for single-label data, or a ``(n, C)``
    ``uint8`` multi-hot matrix for multi-label data.
    """

    texts: tuple[str, ...]
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"`len(texts) == len(labels)` must hold, but got {len(self.texts)} and "
                f"{len(self.labels)}."
            )

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, index: Sequence[int] | np.ndarray) -> Split:
        index = np.asarray(index, dtype=np.int64)
        return Split(tuple(self.texts[i] for i in index), self.labels[index])

    def digest(self) -> str:
        """A content hash of the texts (labels excluded): the cache key of their encodings."""
        h = hashlib.sha256()
        for text in self.texts:
            h.update(text.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()[:20]


SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TextDataset:
    """A text-classification dataset with fixed train / validation / test splits."""

    name: str
    class_names: tuple[str, ...]
    multilabel: bool
    train: Split
    val: Split
    test: Split
    description: str = ""
    derived: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: the ``data.options`` it was loaded with (lets the encoder cache find the rows of a
    #: subset or of another holdout in the cached encodings of the whole dataset)
    source_options: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise KeyError(unknown_name_message("split", name, SPLITS))
        return getattr(self, name)

    def multi_hot(self, split: str) -> np.ndarray:
        """Labels of a split as a ``(n, C)`` float32 matrix (one-hot for single-label data)."""
        labels = self.split(split).labels
        if self.multilabel:
            return labels.astype(np.float32)
        out = np.zeros((len(labels), self.num_classes), dtype=np.float32)
        out[np.arange(len(labels)), labels] = 1.0
        return out

    def class_counts(self, split: str = "train") -> np.ndarray:
        """Positives per class in a split (the training split gives the loss class frequencies)."""
        return self.multi_hot(split).sum(axis=0).astype(np.int64)
