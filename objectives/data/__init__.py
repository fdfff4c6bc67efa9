"""Datasets: registry, loaders with fixed splits, and label statistics."""

from __future__ import annotations

from objectives.data import builtin as _builtin  # noqa: F401  (registers the built-ins)
from objectives.data.base import SPLITS, Split, TextDataset
from objectives.data.registry import (
    DATASETS,
    DatasetInfo,
    RawDataset,
    get_dataset_info,
    load_dataset,
    register_dataset,
)

__all__ = [
    "DATASETS",
    "SPLITS",
    "DatasetInfo",
    "RawDataset",
    "Split",
    "TextDataset",
    "get_dataset_info",
    "load_dataset",
    "register_dataset",
]
