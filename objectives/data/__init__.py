"""Datasets: registry, loaders with fixed splits, and label statistics.

Label statistics live in :mod:`losstune.objectives.data.stats` (imported on demand: it needs
sklearn).
"""

from __future__ import annotations

from losstune.objectives.data import builtin as _builtin  # noqa: F401  (registers the built-ins)
from losstune.objectives.data.base import SPLITS, Split, TextDataset
from losstune.objectives.data.registry import (
    DATASETS,
    DatasetError,
    DatasetInfo,
    RawDataset,
    UnknownDatasetError,
    get_dataset_info,
    load_dataset,
    register_dataset,
)

__all__ = [
    "DATASETS",
    "SPLITS",
    "DatasetError",
    "DatasetInfo",
    "RawDataset",
    "Split",
    "TextDataset",
    "UnknownDatasetError",
    "get_dataset_info",
    "load_dataset",
    "register_dataset",
]
